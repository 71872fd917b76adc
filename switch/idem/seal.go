package idem

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// Stored responses can hold secrets: a create's answer carries the
// withdrawal's numeric code, which the withdrawals table keeps only as a
// keyed hash. With a seal key the store keeps each response body sealed
// (AES-256-GCM, bound to its scope and key), so reading the table is not
// enough to cash a code.

// sealedV1 starts a sealed body; an unsealed one (a JSON answer, or empty)
// never starts with it.
const sealedV1 = 0x01

// WithSealKey seals stored response bodies with a key derived from secret
// (the switch's -secret).
func WithSealKey(secret []byte) Option {
	return func(s *Store) {
		k := sha256.Sum256(append([]byte("softatm idempotency body v1\x00"), secret...))
		block, err := aes.NewCipher(k[:])
		if err != nil {
			panic(err) // a 32-byte key always makes a cipher
		}
		s.aead, err = cipher.NewGCM(block)
		if err != nil {
			panic(err)
		}
	}
}

// errUnsealable: the stored body cannot be opened (sealed with another
// secret, or damaged).
var errUnsealable = errors.New("idempotency: the stored response cannot be opened (was -secret changed?)")

func sealAAD(scope, key string) []byte { return []byte(scope + "\x00" + key) }

// seal returns body sealed for (scope, key), or body itself without a key.
func (s *Store) seal(scope, key string, body []byte) ([]byte, error) {
	if s.aead == nil {
		return body, nil
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(body)+s.aead.Overhead())
	out[0] = sealedV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out[1:], body, sealAAD(scope, key)), nil
}

// open returns the body stored for (scope, key): opened if sealed, as
// stored if not (a row written without a seal key).
func (s *Store) open(scope, key string, stored []byte) ([]byte, error) {
	if len(stored) == 0 || stored[0] != sealedV1 {
		return stored, nil
	}
	if s.aead == nil || len(stored) < 1+s.aead.NonceSize() {
		return nil, errUnsealable
	}
	n := 1 + s.aead.NonceSize()
	body, err := s.aead.Open(nil, stored[1:n], stored[n:], sealAAD(scope, key))
	if err != nil {
		return nil, errUnsealable
	}
	return body, nil
}
