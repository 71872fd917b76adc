package idem_test

import (
	"regexp"
	"testing"

	"github.com/softatm/softatm/switch/idem"
)

// keyPattern is the written rule ValidKey implements by hand.
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)

// FuzzIdempotencyKeyHeader checks the key validator against the written
// rule on any header value a client can send.
func FuzzIdempotencyKeyHeader(f *testing.F) {
	for _, s := range []string{"", "a", "550e8400-e29b-41d4-a716-446655440000", "k:1.2_3-4", "has space", "ü", "a\x00b", "a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got := idem.ValidKey(key)
		if want := keyPattern.MatchString(key); got != want {
			t.Fatalf("ValidKey(%q) = %v, want %v", key, got, want)
		}
	})
}
