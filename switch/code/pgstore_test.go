package code

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger/schema/schematest"
	switchschema "github.com/softatm/softatm/switch/schema"
)

func mustPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := schematest.MustMigratedDB(t, switchschema.All()...)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// storeContract runs the KeyStore rules against a store; the memory fake
// and PostgreSQL must agree.
func storeContract(t *testing.T, store KeyStore) {
	t.Helper()
	ctx := context.Background()
	k1, err := GenerateKey("K1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, k1); err != nil {
		t.Fatal(err)
	}
	wantErr := func(err error, code string) {
		t.Helper()
		if got := softatm.ErrorCode(err); got != code {
			t.Fatalf("%v: code %q, want %q", err, got, code)
		}
	}
	dup, _ := GenerateKey("K1", t0)
	wantErr(store.Create(ctx, dup), softatm.EConflict)
	active := k1
	active.State = StateActive
	wantErr(store.Create(ctx, active), softatm.EInvalid)
	wantErr(store.Activate(ctx, "NOPE", t0), softatm.ENotFound)
	wantErr(store.Retire(ctx, "NOPE", t0), softatm.ENotFound)

	t1 := t0.Add(time.Minute)
	if err := store.Activate(ctx, "K1", t1); err != nil {
		t.Fatal(err)
	}
	if err := store.Activate(ctx, "K1", t1.Add(time.Hour)); err != nil {
		t.Fatalf("activating the active key again: %v", err)
	}
	k2, _ := GenerateKey("K2", t1)
	if err := store.Create(ctx, k2); err != nil {
		t.Fatal(err)
	}
	t2 := t1.Add(time.Hour)
	if err := store.Activate(ctx, "K2", t2); err != nil {
		t.Fatal(err)
	}
	wantErr(store.Activate(ctx, "K1", t2), softatm.EConflict)

	keys, err := store.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("%d keys, want 2", len(keys))
	}
	got1, got2 := keys[0], keys[1]
	if got1.ID != "K1" || got1.State != StateRetired || !got1.ActivatedAt.Equal(t1) || !got1.RetiredAt.Equal(t2) {
		t.Errorf("K1 = %v", got1)
	}
	if got2.ID != "K2" || got2.State != StateActive || !got2.ActivatedAt.Equal(t2) || !got2.RetiredAt.IsZero() {
		t.Errorf("K2 = %v", got2)
	}
	if !got1.Public.Equal(k1.Public) || !got1.Private.Equal(k1.Private) || !got1.CreatedAt.Equal(t0) {
		t.Errorf("K1 key material or creation time changed")
	}
	for _, k := range keys {
		if err := k.check(); err != nil {
			t.Error(err)
		}
	}

	// Retire only moves earlier.
	if err := store.Retire(ctx, "K1", t2.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	early := t0.Add(-48 * time.Hour)
	if err := store.Retire(ctx, "K1", early); err != nil {
		t.Fatal(err)
	}
	keys, _ = store.Keys(ctx)
	if !keys[0].RetiredAt.Equal(early) {
		t.Errorf("K1 retired at %v, want %v", keys[0].RetiredAt, early)
	}
}

func TestMemKeyStoreContract(t *testing.T) {
	t.Parallel()
	storeContract(t, NewMemKeyStore())
}

func TestPGKeyStoreContract(t *testing.T) {
	t.Parallel()
	storeContract(t, NewPGKeyStore(mustPool(t)))
}

// TestPGKeyStoreConcurrentActivate: operators racing to activate different
// keys end with exactly one active key, and every other one retired or
// pending, never two active.
func TestPGKeyStoreConcurrentActivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := NewPGKeyStore(mustPool(t))
	const n = 8
	for i := range n {
		k, _ := GenerateKey(fmt.Sprintf("K%d", i), t0)
		if err := store.Create(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = store.Activate(ctx, fmt.Sprintf("K%d", i), t0.Add(time.Duration(i)*time.Second))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		// A key retired by a later activation before its own ran is a
		// legitimate conflict; anything else is not.
		if err != nil && softatm.ErrorCode(err) != softatm.EConflict {
			t.Errorf("Activate K%d: %v", i, err)
		}
	}
	keys, err := store.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, k := range keys {
		if k.State == StateActive {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("%d active keys, want 1: %v", active, keys)
	}
	kr := NewKeyring(store, WithClock(func() time.Time { return t0 }))
	if err := kr.Load(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPGKeyringEndToEnd signs with keys from PostgreSQL, rotates, and
// verifies on a second Keyring as another switch instance would.
func TestPGKeyringEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustPool(t)
	store := NewPGKeyStore(pool)
	if _, err := Rotate(ctx, store, "A1", t0); err != nil {
		t.Fatal(err)
	}
	clk := newClock(t0)
	signer := NewKeyring(store, WithClock(clk.now), WithRefresh(0))
	verifier := NewKeyring(NewPGKeyStore(pool), WithClock(clk.now))
	s1, err := signer.Sign(ctx, samplePayload(t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Verify(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(ctx, store, "A2", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Minute)
	s2, err := signer.Sign(ctx, samplePayload(clk.now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{s1, s2} {
		if _, err := verifier.Verify(ctx, s); err != nil {
			t.Errorf("verifier: %v", err)
		}
	}
	if p, _, _, _ := Decode(s2); p.KeyID != "A2" {
		t.Errorf("signed by %s after rotation, want A2", p.KeyID)
	}
}
