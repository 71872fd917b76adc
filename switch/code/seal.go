package code

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Private seeds at rest. A signing key's 32-byte Ed25519 seed signs codes
// that pay cash, so the database alone must not be enough to forge one: with
// a key-encryption key (KEK) the store keeps each seed sealed with
// AES-256-GCM, bound to its key id, and the KEK lives outside the database
// (`softatm serve -key-file`). The KEK is 32 random bytes written as 64 hex
// digits; the AES key is derived from it per purpose, so that the same KEK
// can later seal other things without two purposes sharing a key.
//
// A sealed seed carries the fingerprint of the KEK that sealed it, so that a
// wrong KEK is told apart from a damaged row, and the fingerprint (a hash of
// the KEK, safe to print) names the KEK an operator must find.

// KEKSize is the size of a key-encryption key in bytes.
const KEKSize = 32

const (
	sealedSeedV1   byte = 0x01
	fingerprintLen      = 8
	gcmNonceLen         = 12
	gcmTagLen           = 16
	// sealedSeedLen is the length of a sealed seed (migration 00030 checks
	// it): version, fingerprint, nonce, sealed seed and tag.
	sealedSeedLen = 1 + fingerprintLen + gcmNonceLen + ed25519.SeedSize + gcmTagLen
)

// ErrSealed: a key's seed is sealed and no KEK was given.
var ErrSealed = errors.New("the private seed is sealed and no key-encryption key was given (-key-file, SOFTATM_KEY_FILE or SOFTATM_KEK)")

// ErrWrongKEK: a sealed seed names another KEK than the one given.
var ErrWrongKEK = errors.New("the private seed was sealed with another key-encryption key")

// KEK is a key-encryption key for private seeds. Its String never prints
// the key, only its fingerprint.
type KEK struct {
	aead cipher.AEAD
	fp   [fingerprintLen]byte
}

// NewKEK returns the KEK of the 32 bytes key.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want %d", len(key), KEKSize)
	}
	sub := sha256.Sum256(append([]byte("softatm signing seed v1\x00"), key...))
	block, err := aes.NewCipher(sub[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &KEK{aead: aead}
	fp := sha256.Sum256(append([]byte("softatm kek fingerprint v1\x00"), key...))
	copy(k.fp[:], fp[:])
	return k, nil
}

// ParseKEK reads a KEK written as 64 hex digits (a key file's content);
// surrounding white space is ignored.
func ParseKEK(text []byte) (*KEK, error) {
	text = bytes.TrimSpace(text)
	key := make([]byte, hex.DecodedLen(len(text)))
	if _, err := hex.Decode(key, text); err != nil || len(key) != KEKSize {
		return nil, fmt.Errorf("a key-encryption key is %d hex digits (`softatm keys new-kek` writes one)", 2*KEKSize)
	}
	return NewKEK(key)
}

// NewKEKText returns a fresh KEK from crypto/rand, written as a key file
// holds it: 64 hex digits and a line break.
func NewKEKText() ([]byte, error) {
	var key [KEKSize]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("generating key-encryption key: %w", err)
	}
	return []byte(hex.EncodeToString(key[:]) + "\n"), nil
}

// Fingerprint names the KEK without revealing it.
func (k *KEK) Fingerprint() string { return hex.EncodeToString(k.fp[:]) }

// String is the fingerprint, so that a KEK printed by mistake does not leak.
func (k *KEK) String() string { return "kek " + k.Fingerprint() }

// GoString is String, for %#v.
func (k *KEK) GoString() string { return k.String() }

func seedAAD(id string) []byte { return []byte("softatm signing seed v1\x00" + id) }

// sealSeed seals key id's seed.
func (k *KEK) sealSeed(id string, seed []byte) ([]byte, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key %s: private seed is %d bytes", id, len(seed))
	}
	out := make([]byte, 1+fingerprintLen+gcmNonceLen, sealedSeedLen)
	out[0] = sealedSeedV1
	copy(out[1:], k.fp[:])
	nonce := out[1+fingerprintLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, nonce, seed, seedAAD(id)), nil
}

// sealedBy returns the fingerprint a sealed seed names, or "" if it is not
// a sealed seed of this version.
func sealedBy(sealed []byte) string {
	if len(sealed) != sealedSeedLen || sealed[0] != sealedSeedV1 {
		return ""
	}
	return hex.EncodeToString(sealed[1 : 1+fingerprintLen])
}

// openSeed opens key id's sealed seed. k may be nil (no KEK given).
func (k *KEK) openSeed(id string, sealed []byte) ([]byte, error) {
	by := sealedBy(sealed)
	switch {
	case by == "":
		return nil, fmt.Errorf("key %s: the sealed seed is damaged (%d bytes)", id, len(sealed))
	case k == nil:
		return nil, fmt.Errorf("key %s (sealed with kek %s): %w", id, by, ErrSealed)
	case by != k.Fingerprint():
		return nil, fmt.Errorf("key %s: %w: sealed with kek %s, given kek %s", id, ErrWrongKEK, by, k.Fingerprint())
	}
	n := 1 + fingerprintLen + gcmNonceLen
	seed, err := k.aead.Open(nil, sealed[1+fingerprintLen:n], sealed[n:], seedAAD(id))
	if err != nil {
		// The right KEK and a failed tag: the row was changed (or moved to
		// another key id) in the database.
		return nil, fmt.Errorf("key %s: the sealed seed does not open with kek %s: damaged or moved", id, by)
	}
	return seed, nil
}
