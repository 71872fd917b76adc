package code

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"strings"

	"github.com/google/uuid"
)

// NumericLen is the number of digits of a numeric code: 11 random digits
// (10^11 codes, so a guess succeeds about once in 10^11 / live codes tries;
// the caller caps failures) and a Luhn check digit that catches every
// single-digit typo and most swaps before any lookup.
const NumericLen = 12

// Domain tags keep the two keyed hashes apart, so that one can never be
// presented as the other even under the same secret.
const (
	numericTag = "softatm/numeric/v1\x00"
	phoneTag   = "softatm/phone-last4/v1\x00"
)

var numericSpace = big.NewInt(100_000_000_000) // 10^11

// NewNumeric returns a fresh numeric code from crypto/rand. Codes are not
// unique by construction: the caller stores HashNumeric under a unique
// index and draws again on a (rare) collision.
func NewNumeric() (string, error) {
	n, err := rand.Int(rand.Reader, numericSpace)
	if err != nil {
		return "", fmt.Errorf("drawing numeric code: %w", err)
	}
	body := fmt.Sprintf("%011d", n)
	return body + string(rune('0'+luhnDigit(body))), nil
}

// NormalizeNumeric removes the spaces and dashes people type or print
// between groups of digits. It does not check anything else.
func NormalizeNumeric(s string) string {
	if !strings.ContainsAny(s, " -") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '-' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ValidNumeric reports whether s, once normalized, is 12 ASCII digits with
// a correct check digit.
func ValidNumeric(s string) bool {
	s = NormalizeNumeric(s)
	if len(s) != NumericLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return int(s[NumericLen-1]-'0') == luhnDigit(s[:NumericLen-1])
}

// FormatNumeric groups a numeric code as "1234 5678 9012" for display; it
// returns anything else unchanged.
func FormatNumeric(s string) string {
	n := NormalizeNumeric(s)
	if len(n) != NumericLen {
		return s
	}
	return n[0:4] + " " + n[4:8] + " " + n[8:12]
}

// luhnDigit returns the Luhn check digit for the digits of body.
func luhnDigit(body string) int {
	sum := 0
	double := true // the digit left of the check digit is doubled
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10 - sum%10) % 10
}

// HashNumeric is the keyed hash stored instead of a numeric code: without
// the secret, a copy of the database does not give the codes away (10^11
// is a small space to search for an unkeyed hash). The code is normalized
// first, so "1234-5678-9012" and "123456789012" hash alike.
func HashNumeric(secret []byte, numeric string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(numericTag))
	m.Write([]byte(NormalizeNumeric(numeric)))
	return m.Sum(nil)
}

// HashPhone is the keyed hash of the last 4 digits of the citizen's phone,
// bound to one withdrawal so that equal digits on two withdrawals give two
// different hashes.
func HashPhone(secret []byte, withdrawalID uuid.UUID, last4 string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(phoneTag))
	m.Write(withdrawalID[:])
	m.Write([]byte(strings.TrimSpace(last4)))
	return m.Sum(nil)
}

// CheckPhone compares last4 with a stored HashPhone in constant time.
func CheckPhone(secret []byte, withdrawalID uuid.UUID, last4 string, stored []byte) bool {
	return len(stored) > 0 && hmac.Equal(HashPhone(secret, withdrawalID, last4), stored)
}
