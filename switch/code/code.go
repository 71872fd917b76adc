// Package code owns withdrawal codes: the signed QR payload, its encoding,
// the Ed25519 keys that sign it (their store and rotation) and the numeric
// fallback code with its keyed hashes.
//
// # QR payload, version 1
//
// A code is a compact binary payload followed by a 64-byte Ed25519 signature
// over exactly those payload bytes, encoded as upper-case RFC 4648 base32
// without padding (alphabet A-Z and 2-7, all inside QR alphanumeric mode, so
// the QR stays small). It is never a URL: the kiosk never opens anything.
// Integers are big-endian.
//
//	offset  size  field
//	0       1     version, always 1
//	1       1     key id length k, 1..8
//	2       k     key id, ASCII [A-Z0-9]
//	2+k     16    withdrawal id (UUID bytes, 128-bit random)
//	18+k    8     amount, int64 minor units, > 0
//	26+k    2     currency, ISO 4217 numeric as uint16, 1..999 ("704" is 704)
//	28+k    8     expiry, int64 Unix seconds, > 0
//	36+k    1     issuing bank code length b, 1..8
//	37+k    b     issuing bank code, ASCII [A-Z0-9]
//	37+k+b  64    Ed25519 signature over bytes [0, 37+k+b)
//
// # QR payload, version 2 (deposit codes)
//
// The same layout with one byte more after the bank code, the kind: 2 for a
// deposit (cash in). A withdrawal code stays version 1 (so every code issued
// before stays valid and keeps its text); a version 2 code of kind 1 or of
// any other kind is refused, so one payload still has exactly one text.
//
//	37+k+b  1     kind, 2 (deposit)
//	38+k+b  64    Ed25519 signature over bytes [0, 38+k+b)
//
// The payload is 39..54 bytes, the whole code 103..118 bytes, 165..189
// base32 characters. Decoding is strict: every field must be in range, no
// byte may trail the signature and the base32 text must be canonical (no
// padding, no lower case, no line breaks, zero trailing bits), so that one
// payload has exactly one text and any changed character is refused.
//
// # Keys
//
// Keys are 'pending' when generated, 'active' while they sign (exactly one at
// a time) and 'retired' afterwards. Codes live at most MaxLifetime, so a
// retired key keeps verifying until RetiredAt + MaxLifetime + skew and is
// refused after that. Retiring a key with a RetiredAt far enough in the past
// revokes it at once (for a leaked key). Private seeds are stored in the
// database (table signing_keys), sealed with a key-encryption key kept
// outside it (seal.go); the production answer is still an HSM or a KMS that
// signs without ever handing the key out.
//
// # Numeric fallback
//
// A 12-digit code, 11 random digits and a Luhn check digit, stored only as an
// HMAC-SHA256 under a server secret. It is a handle, not a credential: the
// teller must also give the last 4 digits of the citizen's phone, stored as an
// HMAC bound to the withdrawal, and the caller caps failures (switch/replay).
//
// Errors are *softatm.Error values: ECodeInvalid and ECodeExpired for codes,
// EInvalid for bad arguments, ENotFound / EConflict from the key store,
// EUnavailable when the key store cannot be read.
//
// This package may import only the root softatm package and ledger (for its
// transaction retry loop, in pgstore.go) among softatm packages; it must not
// import switch, teller or iso (imports_test.go checks it).
package code

import (
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
)

// Version is the payload layout of withdrawal codes; VersionKind, of
// codes that carry their kind (deposit codes).
const (
	Version     byte = 1
	VersionKind byte = 2
)

// Kind is what a code is for: paying cash out, or taking cash in.
type Kind byte

// The kinds. A zero Kind is a withdrawal's.
const (
	KindWithdrawal Kind = 1
	KindDeposit    Kind = 2
)

const (
	maxIDLen      = 8  // key id and bank code
	sigLen        = 64 // ed25519.SignatureSize
	fixedLen      = 1 + 1 + 16 + 8 + 2 + 8 + 1
	minPayloadLen = fixedLen + 1 + 1
	maxPayloadLen = fixedLen + maxIDLen + maxIDLen + 1 // + the kind byte of version 2

	// MinTextLen and MaxTextLen bound the length of a code's text (base32
	// without padding: 5 bits a character); anything outside is refused
	// before it is decoded.
	MinTextLen = ((minPayloadLen+sigLen)*8 + 4) / 5
	MaxTextLen = ((maxPayloadLen+sigLen)*8 + 4) / 5
)

// enc is base32 without padding. encoding/base32 has no strict mode (it
// accepts non-zero trailing bits), so Decode re-encodes to check that the
// text is canonical.
var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Payload is what a code says. Sign sets Version and KeyID.
type Payload struct {
	Version      byte      // 1
	KeyID        string    // 1..8 characters [A-Z0-9]
	WithdrawalID uuid.UUID // 128-bit random
	Amount       int64     // minor units (dong for VND), > 0
	Currency     string    // ISO 4217 numeric, three digits, "704"
	Expiry       time.Time // second precision, UTC on decode
	Bank         string    // issuing bank code, 1..8 characters [A-Z0-9]
	// Kind is KindDeposit for a deposit code (version 2); zero or
	// KindWithdrawal for a withdrawal code (version 1). Decode sets it.
	Kind Kind
}

// IsDeposit says whether p is a deposit code's.
func (p Payload) IsDeposit() bool { return p.Kind == KindDeposit }

// versionOf is the layout a payload of kind k is written in.
func versionOf(k Kind) byte {
	if k == KindDeposit {
		return VersionKind
	}
	return Version
}

// invalid is the one public answer for a code that does not decode or
// verify; the reason is kept as the internal cause and never shown.
func invalid(format string, args ...any) error {
	return softatm.Wrap(softatm.ECodeInvalid, "the withdrawal code is not valid", fmt.Errorf(format, args...))
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// currencyNumber parses a three-digit ISO 4217 numeric code.
func currencyNumber(s string) (uint16, bool) {
	if len(s) != 3 {
		return 0, false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.Atoi(s)
	if n == 0 {
		return 0, false
	}
	return uint16(n), true
}

// marshal returns the signed bytes of p. It checks every field, so that
// Sign never produces a code that Decode would refuse.
func marshal(p Payload) ([]byte, error) {
	if p.Kind != 0 && p.Kind != KindWithdrawal && p.Kind != KindDeposit {
		return nil, fmt.Errorf("kind %d: want withdrawal or deposit", p.Kind)
	}
	if want := versionOf(p.Kind); p.Version != want {
		return nil, fmt.Errorf("version %d, want %d", p.Version, want)
	}
	if !validID(p.KeyID) {
		return nil, fmt.Errorf("key id %q: want 1..8 characters A-Z 0-9", p.KeyID)
	}
	if p.WithdrawalID == uuid.Nil {
		return nil, fmt.Errorf("withdrawal id is nil")
	}
	if p.Amount <= 0 {
		return nil, fmt.Errorf("amount %d: must be > 0", p.Amount)
	}
	cur, ok := currencyNumber(p.Currency)
	if !ok {
		return nil, fmt.Errorf("currency %q: want an ISO 4217 numeric code", p.Currency)
	}
	exp := p.Expiry.Unix()
	if p.Expiry.IsZero() || exp <= 0 {
		return nil, fmt.Errorf("expiry %v: must be set", p.Expiry)
	}
	if !validID(p.Bank) {
		return nil, fmt.Errorf("bank %q: want 1..8 characters A-Z 0-9", p.Bank)
	}
	b := make([]byte, 0, maxPayloadLen+sigLen)
	b = append(b, p.Version, byte(len(p.KeyID)))
	b = append(b, p.KeyID...)
	b = append(b, p.WithdrawalID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Amount))
	b = binary.BigEndian.AppendUint16(b, cur)
	b = binary.BigEndian.AppendUint64(b, uint64(exp))
	b = append(b, byte(len(p.Bank)))
	b = append(b, p.Bank...)
	if p.Version == VersionKind {
		b = append(b, byte(p.Kind))
	}
	return b, nil
}

// encode returns the text of a code from its signed bytes and signature.
func encode(signed, sig []byte) string {
	all := make([]byte, 0, len(signed)+len(sig))
	all = append(all, signed...)
	all = append(all, sig...)
	return enc.EncodeToString(all)
}

// Decode parses a code's text without checking its signature: it returns
// the payload, the signed bytes and the signature. Any malformed input gives
// an ECodeInvalid error. Decode is pure; Keyring.Verify is what trusts a code.
func Decode(s string) (Payload, []byte, []byte, error) {
	if len(s) < MinTextLen || len(s) > MaxTextLen {
		return Payload{}, nil, nil, invalid("length %d outside %d..%d", len(s), MinTextLen, MaxTextLen)
	}
	// The standard decoder skips \r and \n; refuse them (and anything else
	// outside the alphabet) so that one code has exactly one text.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return Payload{}, nil, nil, invalid("character %q at %d", c, i)
		}
	}
	raw, err := enc.DecodeString(s)
	if err != nil {
		return Payload{}, nil, nil, invalid("base32: %v", err)
	}
	if enc.EncodeToString(raw) != s {
		return Payload{}, nil, nil, invalid("base32 text is not canonical")
	}
	r := reader{b: raw}
	var p Payload
	p.Version = r.byte()
	if r.bad || (p.Version != Version && p.Version != VersionKind) {
		return Payload{}, nil, nil, invalid("version %d", p.Version)
	}
	p.KeyID = r.id()
	copy(p.WithdrawalID[:], r.take(16))
	amount := int64(r.uint64())
	cur := r.uint16()
	exp := int64(r.uint64())
	p.Bank = r.id()
	if p.Version == VersionKind {
		// Only a deposit is written in version 2: a withdrawal there would
		// be a second text for a version 1 payload.
		if p.Kind = Kind(r.byte()); p.Kind != KindDeposit && !r.bad {
			return Payload{}, nil, nil, invalid("kind %d in version %d", p.Kind, p.Version)
		}
	}
	if r.bad {
		return Payload{}, nil, nil, invalid("truncated or bad field at %d", r.off)
	}
	switch {
	case !validID(p.KeyID):
		return Payload{}, nil, nil, invalid("key id %q", p.KeyID)
	case p.WithdrawalID == uuid.Nil:
		return Payload{}, nil, nil, invalid("nil withdrawal id")
	case amount <= 0:
		return Payload{}, nil, nil, invalid("amount %d", amount)
	case cur == 0 || cur > 999:
		return Payload{}, nil, nil, invalid("currency %d", cur)
	case exp <= 0:
		return Payload{}, nil, nil, invalid("expiry %d", exp)
	case !validID(p.Bank):
		return Payload{}, nil, nil, invalid("bank %q", p.Bank)
	}
	if len(raw)-r.off != sigLen {
		return Payload{}, nil, nil, invalid("%d bytes after the payload, want a %d-byte signature", len(raw)-r.off, sigLen)
	}
	p.Amount = amount
	p.Currency = fmt.Sprintf("%03d", cur)
	p.Expiry = time.Unix(exp, 0).UTC()
	return p, raw[:r.off:r.off], raw[r.off:], nil
}

// reader reads fields in order and remembers the first overrun, so that
// Decode checks once instead of after every field.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || len(r.b)-r.off < n {
		r.bad = true
		return make([]byte, n)
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) byte() byte     { return r.take(1)[0] }
func (r *reader) uint16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) uint64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }
func (r *reader) id() string {
	n := int(r.byte())
	if n == 0 || n > maxIDLen {
		r.bad = true
		return ""
	}
	return string(r.take(n))
}
