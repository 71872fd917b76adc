package code

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/softatm/softatm"
)

// seedCode is a valid code signed with a fixed key, so that the fuzzer
// starts from something that decodes.
func seedCode(tb testing.TB) string {
	tb.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	p := samplePayload(time.Unix(1_800_000_000, 0))
	p.Version, p.KeyID = Version, "DEV1"
	b, err := marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return encode(b, ed25519.Sign(priv, b))
}

// seedDepositCode is seedCode's deposit twin (version 2, kind byte).
func seedDepositCode(tb testing.TB) string {
	tb.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	p := samplePayload(time.Unix(1_800_000_000, 0))
	p.Version, p.KeyID, p.Kind = VersionKind, "DEV1", KindDeposit
	b, err := marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return encode(b, ed25519.Sign(priv, b))
}

// FuzzDecode: Decode never panics, refuses with ECodeInvalid only, and
// anything it accepts is canonical: encoding the decoded payload gives back
// the same signed bytes and the same text.
func FuzzDecode(f *testing.F) {
	s := seedCode(f)
	f.Add(s)
	f.Add(s[:len(s)-1])
	f.Add(strings.ToLower(s))
	f.Add("")
	f.Add(strings.Repeat("A", MaxTextLen))
	d := seedDepositCode(f)
	f.Add(d)
	f.Add(d[:len(d)-1])
	f.Fuzz(func(t *testing.T, s string) {
		p, signed, sig, err := Decode(s)
		if err != nil {
			if code := softatm.ErrorCode(err); code != softatm.ECodeInvalid {
				t.Fatalf("error code %q, want %q", code, softatm.ECodeInvalid)
			}
			return
		}
		if len(sig) != ed25519.SignatureSize {
			t.Fatalf("signature is %d bytes", len(sig))
		}
		b, err := marshal(p)
		if err != nil {
			t.Fatalf("decoded payload does not marshal: %v (%+v)", err, p)
		}
		if !bytes.Equal(b, signed) {
			t.Fatalf("re-marshal differs:\n %x\n %x", b, signed)
		}
		if again := encode(signed, sig); again != s {
			t.Fatalf("not canonical: %q re-encodes as %q", s, again)
		}
	})
}

// FuzzNumeric: ValidNumeric and NormalizeNumeric never panic; Normalize is
// idempotent; a valid code normalizes to 12 digits and every one-digit
// change of it is refused.
func FuzzNumeric(f *testing.F) {
	for _, s := range []string{"123456789015", "1234 5678 9015", "1234-5678-9015", "", "12345678901a", "000000000000", "  -- "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeNumeric(s)
		if NormalizeNumeric(n) != n {
			t.Fatalf("Normalize not idempotent on %q", s)
		}
		if strings.ContainsAny(n, " -") {
			t.Fatalf("Normalize(%q) = %q still has separators", s, n)
		}
		if !ValidNumeric(s) {
			return
		}
		if len(n) != NumericLen {
			t.Fatalf("valid %q normalizes to %q", s, n)
		}
		for i := range NumericLen {
			changed := n[:i] + string('0'+(n[i]-'0'+1)%10) + n[i+1:]
			if ValidNumeric(changed) {
				t.Fatalf("%q valid and so is %q", n, changed)
			}
		}
	})
}

// FuzzDecodeRaw fuzzes the binary layout itself: the input bytes are
// base32-encoded first, so that mutations reach the field parser instead of
// dying in the base32 decoder.
func FuzzDecodeRaw(f *testing.F) {
	raw, err := enc.DecodeString(seedCode(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	f.Add(append(append([]byte{}, raw...), 0))
	f.Add([]byte{1, 0})
	if rawDeposit, err := enc.DecodeString(seedDepositCode(f)); err == nil {
		f.Add(rawDeposit)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := enc.EncodeToString(b)
		p, signed, sig, err := Decode(s)
		if err != nil {
			if code := softatm.ErrorCode(err); code != softatm.ECodeInvalid {
				t.Fatalf("error code %q, want %q", code, softatm.ECodeInvalid)
			}
			return
		}
		m, err := marshal(p)
		if err != nil || !bytes.Equal(m, signed) || !bytes.Equal(append(append([]byte{}, signed...), sig...), b) {
			t.Fatalf("accepted %x but does not round-trip (%v)", b, err)
		}
	})
}

// TestSeedCodeDecodes checks the fuzz seed and logs it (run with -v to
// refresh testdata/fuzz).
func TestSeedCodeDecodes(t *testing.T) {
	t.Parallel()
	s := seedCode(t)
	if _, _, _, err := Decode(s); err != nil {
		t.Fatal(err)
	}
	t.Log(s)
}
