package code

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestNewNumeric(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		n, err := NewNumeric()
		if err != nil {
			t.Fatal(err)
		}
		if len(n) != NumericLen || !ValidNumeric(n) {
			t.Fatalf("NewNumeric = %q, not valid", n)
		}
		if seen[n] {
			t.Fatalf("duplicate %q in 1000 draws", n)
		}
		seen[n] = true
	}
}

func TestValidNumeric(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"000000000000", true},
		{"123456789015", true}, // Luhn of 12345678901 is 5
		{"1234 5678 9015", true},
		{"1234-5678-9015", true},
		{"123456789010", false},
		{"12345678901", false},
		{"1234567890155", false},
		{"12345678901a", false},
		{"１２３４５６７８９０１５", false}, // full-width digits are not digits here
		{"", false},
		{"1234.5678.9015", false},
		{"123456789051", false}, // swapped last two
	}
	for _, tt := range tests {
		if got := ValidNumeric(tt.in); got != tt.want {
			t.Errorf("ValidNumeric(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := FormatNumeric("123456789015"); got != "1234 5678 9015" {
		t.Errorf("FormatNumeric = %q", got)
	}
}

// TestLuhnCatchesSingleDigitErrors: every one-digit change of a valid code
// is refused, which is what the check digit is for.
func TestLuhnCatchesSingleDigitErrors(t *testing.T) {
	t.Parallel()
	for range 50 {
		n, _ := NewNumeric()
		for i := range NumericLen {
			for d := byte('0'); d <= '9'; d++ {
				if d == n[i] {
					continue
				}
				bad := n[:i] + string(d) + n[i+1:]
				if ValidNumeric(bad) {
					t.Fatalf("%q (from %q) accepted", bad, n)
				}
			}
		}
	}
}

func TestHashes(t *testing.T) {
	t.Parallel()
	secret := []byte("test secret, 32 bytes long......")
	other := []byte("another secret, 32 bytes long...")
	h := HashNumeric(secret, "1234 5678 9015")
	if !bytes.Equal(h, HashNumeric(secret, "123456789015")) {
		t.Error("formatted and bare codes hash differently")
	}
	if bytes.Equal(h, HashNumeric(other, "123456789015")) {
		t.Error("hash does not depend on the secret")
	}
	if len(h) != 32 {
		t.Errorf("hash is %d bytes", len(h))
	}
	w1, w2 := uuid.New(), uuid.New()
	p := HashPhone(secret, w1, "6789")
	if bytes.Equal(p, HashPhone(secret, w2, "6789")) {
		t.Error("phone hash not bound to the withdrawal")
	}
	if !CheckPhone(secret, w1, "6789", p) || CheckPhone(secret, w1, "6788", p) || CheckPhone(secret, w1, "6789", nil) {
		t.Error("CheckPhone wrong")
	}
	// Domain separation: the two hashes never coincide for the same input.
	if bytes.Equal(HashNumeric(secret, strings.Repeat("1", 4)), HashPhone(secret, uuid.Nil, "1111")) {
		t.Error("numeric and phone hashes collide")
	}
}
