// Package seal keeps secrets the database must hold but must not show:
// AES-256-GCM under a key derived from the switch's -secret and a purpose,
// each sealed value bound to what it belongs to (additional data), so a
// value copied to another row does not open.
//
// This package must not import any other softatm package.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// v1 starts a sealed byte string; textPrefix a sealed text.
const (
	v1         = 0x01
	textPrefix = "sealed.v1."
)

// ErrOpen: a sealed value cannot be opened (another secret, another row,
// or damaged).
var ErrOpen = errors.New("seal: the value cannot be opened (was -secret changed?)")

// Box seals and opens values for one purpose.
type Box struct{ aead cipher.AEAD }

// New returns a Box whose key is derived from secret for purpose; two
// purposes never share a key.
func New(secret []byte, purpose string) *Box {
	k := sha256.Sum256(append([]byte("softatm seal "+purpose+"\x00"), secret...))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Box{aead: aead}
}

// Seal returns plain sealed and bound to aad.
func (b *Box) Seal(plain, aad []byte) []byte {
	out := make([]byte, 1+b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	out[0] = v1
	if _, err := rand.Read(out[1:]); err != nil {
		panic(err) // the system's random source does not fail
	}
	return b.aead.Seal(out, out[1:], plain, aad)
}

// Sealed says whether stored is a sealed value (else it was stored as is).
func Sealed(stored []byte) bool { return len(stored) > 0 && stored[0] == v1 }

// Open returns the value sealed in stored for aad.
func (b *Box) Open(stored, aad []byte) ([]byte, error) {
	n := 1 + b.aead.NonceSize()
	if !Sealed(stored) || len(stored) < n {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, stored[1:n], stored[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// SealText seals a text for a TEXT column.
func (b *Box) SealText(plain, aad string) string {
	return textPrefix + base64.RawURLEncoding.EncodeToString(b.Seal([]byte(plain), []byte(aad)))
}

// OpenText opens what SealText sealed; a text stored before sealing (no
// prefix) is returned as it is.
func (b *Box) OpenText(stored, aad string) (string, error) {
	rest, ok := strings.CutPrefix(stored, textPrefix)
	if !ok {
		return stored, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", ErrOpen
	}
	plain, err := b.Open(raw, []byte(aad))
	return string(plain), err
}
