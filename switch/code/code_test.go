package code

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for Keyring tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock(t time.Time) *fakeClock    { return &fakeClock{t: t} }
func samplePayload(exp time.Time) Payload {
	return Payload{
		WithdrawalID: uuid.MustParse("0b6c1a9e-3f7d-4c1e-9a55-7e1f2d3c4b5a"),
		Amount:       2_000_000,
		Currency:     "704",
		Expiry:       exp,
		Bank:         "MB",
	}
}

// mustKeyring returns a Keyring over a memory store with one active key.
func mustKeyring(t *testing.T, clk *fakeClock, opts ...Option) (*Keyring, *MemKeyStore) {
	t.Helper()
	store := NewMemKeyStore()
	if _, err := Rotate(context.Background(), store, "K1", clk.now()); err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithClock(clk.now), WithRefresh(0)}, opts...)
	kr := NewKeyring(store, opts...)
	if err := kr.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return kr, store
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := softatm.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	kr, _ := mustKeyring(t, clk)
	ctx := context.Background()
	in := samplePayload(t0.Add(30*time.Minute + 700*time.Millisecond))
	s, err := kr.Sign(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ToUpper(s) != s || strings.ContainsAny(s, "=:/ ") {
		t.Errorf("code %q is not bare upper-case base32", s)
	}
	if len(s) < MinTextLen || len(s) > MaxTextLen {
		t.Errorf("len %d outside %d..%d", len(s), MinTextLen, MaxTextLen)
	}
	got, err := kr.Verify(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Version, want.KeyID = 1, "K1"
	want.Expiry = t0.Add(30 * time.Minute) // truncated to the second
	if got != want {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}
	// A scanner's trailing line break is tolerated by Verify.
	if _, err := kr.Verify(ctx, s+"\r\n"); err != nil {
		t.Errorf("Verify with CRLF: %v", err)
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	p := samplePayload(time.Unix(0x01020304, 0))
	p.Version, p.KeyID = 1, "K1"
	b, err := marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 2, 'K', '1'}
	want = append(want, p.WithdrawalID[:]...)
	want = append(want, 0, 0, 0, 0, 0, 0x1e, 0x84, 0x80) // 2,000,000
	want = append(want, 0x02, 0xc0)                      // 704
	want = append(want, 0, 0, 0, 0, 1, 2, 3, 4)
	want = append(want, 2, 'M', 'B')
	if !bytes.Equal(b, want) {
		t.Fatalf("layout\n got %x\nwant %x", b, want)
	}
	if lenMax := maxPayloadLen + sigLen; MaxTextLen != base32.StdEncoding.WithPadding(base32.NoPadding).EncodedLen(lenMax) {
		t.Errorf("MaxTextLen %d wrong", MaxTextLen)
	}
}

func TestVerifyRefusesEveryChangedCharacter(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	kr, _ := mustKeyring(t, clk)
	ctx := context.Background()
	s, err := kr.Sign(ctx, samplePayload(t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := range len(s) {
		for _, c := range []byte{alphabet[(strings.IndexByte(alphabet, s[i])+1)%32], alphabet[(strings.IndexByte(alphabet, s[i])+17)%32]} {
			bad := s[:i] + string(c) + s[i+1:]
			_, err := kr.Verify(ctx, bad)
			wantCode(t, err, softatm.ECodeInvalid)
		}
	}
	// Truncated, extended, lower-cased, padded, broken by a line.
	for name, bad := range map[string]string{
		"short":    s[:len(s)-1],
		"long":     s + "A",
		"lower":    strings.ToLower(s),
		"padded":   s + "====",
		"newline":  s[:50] + "\n" + s[50:],
		"empty":    "",
		"url":      "https://example.com/" + s,
		"sig only": s[len(s)-103:],
	} {
		_, err := kr.Verify(ctx, bad)
		if softatm.ErrorCode(err) != softatm.ECodeInvalid {
			t.Errorf("%s: %v, want %s", name, err, softatm.ECodeInvalid)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	kr, _ := mustKeyring(t, clk)
	p := samplePayload(t0.Add(time.Hour))
	good, err := kr.Sign(ctx, p)
	if err != nil {
		t.Fatal(err)
	}

	// Signed by a key the store does not know.
	other, _ := mustKeyring(t, newClock(t0))
	foreign, err := other.Sign(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// Same id K1, different key pair: the signature fails.
	_, err = kr.Verify(ctx, foreign)
	wantCode(t, err, softatm.ECodeInvalid)

	// A key id nobody has.
	pp, signed, sig, err := Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	_ = signed
	pp.KeyID = "NOPE"
	b, _ := marshal(pp)
	_, err = kr.Verify(ctx, encode(b, sig))
	wantCode(t, err, softatm.ECodeInvalid)

	// Each payload field changed, signature kept.
	for name, change := range map[string]func(*Payload){
		"amount":   func(p *Payload) { p.Amount++ },
		"currency": func(p *Payload) { p.Currency = "840" },
		"expiry":   func(p *Payload) { p.Expiry = p.Expiry.Add(time.Second) },
		"bank":     func(p *Payload) { p.Bank = "VCB" },
		"id":       func(p *Payload) { p.WithdrawalID[15] ^= 1 },
	} {
		q, _, sig, _ := Decode(good)
		change(&q)
		b, err := marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		_, err = kr.Verify(ctx, encode(b, sig))
		if softatm.ErrorCode(err) != softatm.ECodeInvalid {
			t.Errorf("%s changed: %v, want %s", name, err, softatm.ECodeInvalid)
		}
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	kr, _ := mustKeyring(t, clk, WithSkew(30*time.Second))
	s, err := kr.Sign(ctx, samplePayload(t0.Add(10*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at   time.Duration
		want string
	}{
		{0, ""},
		{10 * time.Minute, ""},
		{10*time.Minute + 30*time.Second, ""},
		{10*time.Minute + 31*time.Second, softatm.ECodeExpired},
		{23 * time.Hour, softatm.ECodeExpired},
	}
	for _, tt := range tests {
		clk.t = t0.Add(tt.at)
		_, err := kr.Verify(ctx, s)
		if got := softatm.ErrorCode(err); got != tt.want {
			t.Errorf("at +%v: %v, want %q", tt.at, err, tt.want)
		}
	}
	// An expired forgery is "invalid", not "expired": the signature comes first.
	q, _, sig, _ := Decode(s)
	q.Amount = 1
	b, _ := marshal(q)
	sig[0] ^= 1
	_, err = kr.Verify(ctx, encode(b, sig))
	wantCode(t, err, softatm.ECodeInvalid)
}

func TestSignRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	kr, _ := mustKeyring(t, clk, WithMaxLifetime(24*time.Hour))
	tests := map[string]func(*Payload){
		"past expiry": func(p *Payload) { p.Expiry = t0.Add(-time.Second) },
		"now expiry":  func(p *Payload) { p.Expiry = t0 },
		"too long":    func(p *Payload) { p.Expiry = t0.Add(24*time.Hour + time.Second) },
		"zero amount": func(p *Payload) { p.Amount = 0 },
		"neg amount":  func(p *Payload) { p.Amount = -5 },
		"alpha cur":   func(p *Payload) { p.Currency = "VND" },
		"short cur":   func(p *Payload) { p.Currency = "74" },
		"zero cur":    func(p *Payload) { p.Currency = "000" },
		"no bank":     func(p *Payload) { p.Bank = "" },
		"long bank":   func(p *Payload) { p.Bank = "ABCDEFGHI" },
		"lower bank":  func(p *Payload) { p.Bank = "mb" },
		"nil id":      func(p *Payload) { p.WithdrawalID = uuid.Nil },
		"zero expiry": func(p *Payload) { p.Expiry = time.Time{} },
	}
	for name, change := range tests {
		p := samplePayload(t0.Add(time.Hour))
		change(&p)
		_, err := kr.Sign(ctx, p)
		if softatm.ErrorCode(err) != softatm.EInvalid {
			t.Errorf("%s: %v, want %s", name, err, softatm.EInvalid)
		}
	}
	// Exactly max lifetime is fine.
	if _, err := kr.Sign(ctx, samplePayload(t0.Add(24*time.Hour))); err != nil {
		t.Errorf("max lifetime: %v", err)
	}
}

func TestNoActiveKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	kr, store := mustKeyring(t, clk)
	s, err := kr.Sign(ctx, samplePayload(t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Retire(ctx, "K1", t0); err != nil {
		t.Fatal(err)
	}
	_, err = kr.Sign(ctx, samplePayload(t0.Add(time.Hour)))
	wantCode(t, err, softatm.EInternal)
	// Codes already issued still verify.
	if _, err := kr.Verify(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// TestRotation: new codes use the new key; codes signed with a retired key
// verify until RetiredAt + max lifetime + skew, and not after.
func TestRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	const life, skew = 24 * time.Hour, 30 * time.Second
	kr, store := mustKeyring(t, clk, WithMaxLifetime(life), WithSkew(skew))

	clk.add(time.Hour)
	old, err := kr.Sign(ctx, samplePayload(clk.now().Add(life)))
	if err != nil {
		t.Fatal(err)
	}
	retiredAt := clk.now().Add(time.Minute)
	clk.t = retiredAt
	if _, err := Rotate(ctx, store, "K2", retiredAt); err != nil {
		t.Fatal(err)
	}
	fresh, err := kr.Sign(ctx, samplePayload(clk.now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _, _ := Decode(fresh); p.KeyID != "K2" {
		t.Errorf("new code signed by %s, want K2", p.KeyID)
	}
	keys, _ := store.Keys(ctx)
	if keys[0].State != StateRetired || !keys[0].RetiredAt.Equal(retiredAt) || keys[1].State != StateActive {
		t.Fatalf("after rotation: %v", keys)
	}

	// The old code is still good (it expires at t0+1h+24h, before the key's
	// window ends at t0+1h1m+24h+30s).
	clk.t = t0.Add(time.Hour + life)
	if _, err := kr.Verify(ctx, old); err != nil {
		t.Fatalf("old code at its expiry: %v", err)
	}
	// Past the code's expiry + skew but inside the key's window: expired.
	clk.t = t0.Add(time.Hour + life + skew + time.Second)
	_, err = kr.Verify(ctx, old)
	wantCode(t, err, softatm.ECodeExpired)
	// Past the key's window: the key is refused, so the code is invalid.
	clk.t = retiredAt.Add(life + skew + time.Second)
	_, err = kr.Verify(ctx, old)
	wantCode(t, err, softatm.ECodeInvalid)
	// The new key is unaffected.
	clk.t = retiredAt.Add(30 * time.Minute)
	if _, err := kr.Verify(ctx, fresh); err != nil {
		t.Fatal(err)
	}
}

// TestRevoke: retiring a leaked key in the past refuses its codes at once.
func TestRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	kr, store := mustKeyring(t, clk)
	s, err := kr.Sign(ctx, samplePayload(t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(ctx, store, "K2", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Verify(ctx, s); err != nil {
		t.Fatalf("retired key, before revocation: %v", err)
	}
	if err := store.Retire(ctx, "K1", t0.Add(-DefaultMaxLifetime-DefaultSkew-time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = kr.Verify(ctx, s)
	wantCode(t, err, softatm.ECodeInvalid)
	// Retiring again later does not undo the revocation.
	if err := store.Retire(ctx, "K1", t0); err != nil {
		t.Fatal(err)
	}
	_, err = kr.Verify(ctx, s)
	wantCode(t, err, softatm.ECodeInvalid)
}

// countingStore counts loads and can fail them.
type countingStore struct {
	*MemKeyStore
	loads int
	fail  error
}

func (s *countingStore) Keys(ctx context.Context) ([]Key, error) {
	s.loads++
	if s.fail != nil {
		return nil, s.fail
	}
	return s.MemKeyStore.Keys(ctx)
}

func TestRefreshAndStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	store := &countingStore{MemKeyStore: NewMemKeyStore()}
	if _, err := Rotate(ctx, store, "K1", t0); err != nil {
		t.Fatal(err)
	}
	kr := NewKeyring(store, WithClock(clk.now), WithRefresh(10*time.Second), WithMaxStale(time.Minute))
	s, err := kr.Sign(ctx, samplePayload(t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := kr.Verify(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if store.loads != 1 {
		t.Errorf("%d loads within the refresh interval, want 1", store.loads)
	}
	// A rotation elsewhere is seen after the refresh interval.
	if _, err := Rotate(ctx, store, "K2", t0); err != nil {
		t.Fatal(err)
	}
	clk.add(10 * time.Second)
	s2, _ := kr.Sign(ctx, samplePayload(clk.now().Add(time.Hour)))
	if p, _, _, _ := Decode(s2); p.KeyID != "K2" {
		t.Errorf("after refresh signed by %s, want K2", p.KeyID)
	}
	// Store down: stale keys serve for up to max stale, then EUnavailable.
	store.fail = context.DeadlineExceeded
	clk.add(30 * time.Second)
	if _, err := kr.Verify(ctx, s); err != nil {
		t.Fatalf("stale keys refused: %v", err)
	}
	clk.add(31 * time.Second)
	_, err = kr.Verify(ctx, s)
	wantCode(t, err, softatm.EUnavailable)
}

func TestUnknownKeyReloadIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	store := &countingStore{MemKeyStore: NewMemKeyStore()}
	if _, err := Rotate(ctx, store, "K1", t0); err != nil {
		t.Fatal(err)
	}
	kr := NewKeyring(store, WithClock(clk.now), WithRefresh(time.Hour))
	if err := kr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// A key created on another instance after our load verifies at once.
	other := NewKeyring(store, WithClock(clk.now))
	if _, err := Rotate(ctx, store, "K2", t0); err != nil {
		t.Fatal(err)
	}
	s, err := other.Sign(ctx, samplePayload(t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	loads := store.loads
	if _, err := kr.Verify(ctx, s); err != nil {
		t.Fatalf("code signed by a new key: %v", err)
	}
	// Forged key ids reload at most once per DefaultUnknownReloadMin.
	p, _, sig, _ := Decode(s)
	p.KeyID = "FORGED"
	b, _ := marshal(p)
	forged := encode(b, sig)
	loads = store.loads
	for range 20 {
		_, err := kr.Verify(ctx, forged)
		wantCode(t, err, softatm.ECodeInvalid)
	}
	if n := store.loads - loads; n > 1 {
		t.Errorf("%d reloads for 20 forged key ids, want at most 1", n)
	}
}

func TestLoadRefusesCorruptKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k1, _ := GenerateKey("A", t0)
	k2, _ := GenerateKey("B", t0)
	k1.State, k1.ActivatedAt = StateActive, t0
	k2.State, k2.ActivatedAt = StateActive, t0
	mismatched, _ := GenerateKey("C", t0)
	mismatched.Public = k1.Public
	tests := map[string][]Key{
		"two active":       {k1, k2},
		"mismatched":       {mismatched},
		"short public key": {{ID: "D", Public: ed25519.PublicKey{1, 2}, State: StatePending, CreatedAt: t0}},
		"bad state":        {{ID: "E", Public: k1.Public, State: "weird", CreatedAt: t0}},
	}
	for name, keys := range tests {
		kr := NewKeyring(fixedStore(keys))
		err := kr.Load(ctx)
		if softatm.ErrorCode(err) != softatm.EInternal {
			t.Errorf("%s: %v, want %s", name, err, softatm.EInternal)
		}
	}
}

type fixedStore []Key

func (s fixedStore) Keys(context.Context) ([]Key, error)               { return s, nil }
func (s fixedStore) Create(context.Context, Key) error                 { return nil }
func (s fixedStore) Activate(context.Context, string, time.Time) error { return nil }
func (s fixedStore) Retire(context.Context, string, time.Time) error   { return nil }

func TestKeyStringHidesPrivate(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey("K9", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{k.String(), fmt.Sprint(k), fmt.Sprintf("%#v", k), fmt.Sprintf("%+v", k)} {
		if strings.Contains(s, hex.EncodeToString(k.Private.Seed())) {
			t.Errorf("key printed with its private half: %s", s)
		}
	}
}

func TestGenerateKeyRefusesBadID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "k1", "ABCDEFGHI", "K-1"} {
		if _, err := GenerateKey(id, t0); softatm.ErrorCode(err) != softatm.EInvalid {
			t.Errorf("GenerateKey(%q): %v", id, err)
		}
	}
}

// TestPendingKeyRefused: a key that was never activated signs nothing, so a
// code bearing its id and a valid signature is still refused.
func TestPendingKeyRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	kr, store := mustKeyring(t, clk)
	k2, err := GenerateKey("K2", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, k2); err != nil {
		t.Fatal(err)
	}
	p := samplePayload(t0.Add(time.Hour))
	p.Version, p.KeyID = Version, "K2"
	b, err := marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kr.Verify(ctx, encode(b, ed25519.Sign(k2.Private, b)))
	wantCode(t, err, softatm.ECodeInvalid)
}

// TestConcurrentSignVerify exercises the Keyring's cache under -race while
// the store rotates underneath it.
func TestConcurrentSignVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := NewMemKeyStore()
	if _, err := Rotate(ctx, store, "R0", time.Now()); err != nil {
		t.Fatal(err)
	}
	kr := NewKeyring(store, WithRefresh(time.Millisecond))
	done := make(chan struct{})
	errs := make(chan error, 16)
	for range 8 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				s, err := kr.Sign(ctx, samplePayload(time.Now().Add(time.Hour)))
				if err == nil {
					_, err = kr.Verify(ctx, s)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		if _, err := Rotate(ctx, store, fmt.Sprintf("R%d", i), time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(done)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestDepositCodeKind: a deposit code says so in its signed bytes
// (version 2, kind 2); a withdrawal code stays version 1 with its text;
// a version 2 code of another kind, or a changed kind byte, is refused.
func TestDepositCodeKind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := NewMemKeyStore()
	if _, err := Rotate(ctx, store, "K1", t0); err != nil {
		t.Fatal(err)
	}
	kr := NewKeyring(store, WithClock(newClock(t0).now))
	p := samplePayload(t0.Add(time.Hour))
	w, err := kr.Sign(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	p.Kind = KindDeposit
	d, err := kr.Sign(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := kr.Verify(ctx, w)
	if err != nil || gw.IsDeposit() || gw.Version != Version {
		t.Fatalf("withdrawal code: %+v, %v", gw, err)
	}
	gd, err := kr.Verify(ctx, d)
	if err != nil || !gd.IsDeposit() || gd.Version != VersionKind || gd.WithdrawalID != p.WithdrawalID {
		t.Fatalf("deposit code: %+v, %v", gd, err)
	}
	// The kind byte is signed: flip it and the code is refused.
	_, signed, sig, err := Decode(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []byte{0, 1, 3, 255} {
		bad := append([]byte{}, signed...)
		bad[len(bad)-1] = k
		if _, err := kr.Verify(ctx, encode(bad, sig)); softatm.ErrorCode(err) != softatm.ECodeInvalid {
			t.Errorf("kind byte %d: %v, want %s", k, err, softatm.ECodeInvalid)
		}
	}
	// A withdrawal written as version 2 is refused by Sign.
	p.Kind, p.Version = KindWithdrawal, VersionKind
	if _, err := marshal(p); err == nil {
		t.Error("a withdrawal marshalled in version 2")
	}
}
