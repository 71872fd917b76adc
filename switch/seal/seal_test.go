package seal

import (
	"errors"
	"strings"
	"testing"
)

func TestSealText(t *testing.T) {
	t.Parallel()
	b := New([]byte("secret"), "qr")
	s := b.SealText("AEBKQ-PAYLOAD", "row-1")
	if strings.Contains(s, "AEBKQ") || !strings.HasPrefix(s, textPrefix) {
		t.Fatalf("sealed text shows the value: %q", s)
	}
	if got, err := b.OpenText(s, "row-1"); err != nil || got != "AEBKQ-PAYLOAD" {
		t.Fatalf("open: %q %v", got, err)
	}
	for name, open := range map[string]func() (string, error){
		"another row":     func() (string, error) { return b.OpenText(s, "row-2") },
		"another secret":  func() (string, error) { return New([]byte("other"), "qr").OpenText(s, "row-1") },
		"another purpose": func() (string, error) { return New([]byte("secret"), "idem").OpenText(s, "row-1") },
		"damaged":         func() (string, error) { return b.OpenText(s[:len(s)-2]+"AA", "row-1") },
		"not base64":      func() (string, error) { return b.OpenText(textPrefix+"!!", "row-1") },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}
	if got, err := b.OpenText("PLAIN", "row-1"); err != nil || got != "PLAIN" {
		t.Fatalf("an unsealed text: %q %v", got, err)
	}
}

func FuzzOpenText(f *testing.F) {
	b := New([]byte("secret"), "qr")
	f.Add(b.SealText("x", "a"), "a")
	f.Add(textPrefix, "")
	f.Fuzz(func(t *testing.T, stored, aad string) {
		_, _ = b.OpenText(stored, aad) // never panics
	})
}
