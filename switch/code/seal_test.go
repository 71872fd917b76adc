package code

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func mustKEK(t *testing.T) *KEK {
	t.Helper()
	text, err := NewKEKText()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKEK(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawSeeds reads key id's row as psql would show it.
func rawSeeds(t *testing.T, s *PGKeyStore, id string) (clear, sealed []byte) {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT private_seed, sealed_seed FROM signing_keys WHERE id = $1`, id).
		Scan(&clear, &sealed)
	if err != nil {
		t.Fatal(err)
	}
	return clear, sealed
}

// TestSealedSeedAtRest: with a KEK, what the database holds is not the
// seed, and the store reads the key back whole.
func TestSealedSeedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustPool(t)
	kek := mustKEK(t)
	store := NewPGKeyStore(pool, WithKEK(kek))
	k, err := Rotate(ctx, store, "K1", t0)
	if err != nil {
		t.Fatal(err)
	}
	seed := k.Private.Seed()
	clear, sealed := rawSeeds(t, store, "K1")
	if clear != nil {
		t.Fatalf("private_seed holds %d bytes in clear", len(clear))
	}
	if len(sealed) != sealedSeedLen || bytes.Contains(sealed, seed) || bytes.Contains(sealed, seed[:8]) {
		t.Fatalf("sealed_seed %x shows the seed %x", sealed, seed)
	}
	keys, err := store.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !bytes.Equal(keys[0].Private, k.Private) {
		t.Fatalf("read back %v, want the generated key", keys)
	}
	// The keyring signs with it, and its check (private matches public)
	// passes on read.
	ring := NewKeyring(store)
	if err := ring.Load(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSealedSeedRefusals: a sealed seed without a KEK, with a wrong KEK, or
// moved to another key's row is refused with an error that says which.
func TestSealedSeedRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustPool(t)
	kek := mustKEK(t)
	store := NewPGKeyStore(pool, WithKEK(kek))
	if _, err := Rotate(ctx, store, "K1", t0); err != nil {
		t.Fatal(err)
	}
	k2, _ := GenerateKey("K2", t0)
	if err := store.Create(ctx, k2); err != nil {
		t.Fatal(err)
	}

	if _, err := NewPGKeyStore(pool).Keys(ctx); !errors.Is(err, ErrSealed) || !strings.Contains(err.Error(), kek.Fingerprint()) {
		t.Errorf("no KEK: %v, want ErrSealed naming kek %s", err, kek.Fingerprint())
	}
	other := mustKEK(t)
	_, err := NewPGKeyStore(pool, WithKEK(other)).Keys(ctx)
	if !errors.Is(err, ErrWrongKEK) || !strings.Contains(err.Error(), kek.Fingerprint()) || !strings.Contains(err.Error(), other.Fingerprint()) {
		t.Errorf("wrong KEK: %v, want ErrWrongKEK naming both fingerprints", err)
	}
	ring := NewKeyring(NewPGKeyStore(pool, WithKEK(other)))
	if err := ring.Load(ctx); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("keyring with a wrong KEK loaded: %v", err)
	}

	// K1's sealed seed copied onto K2's row: bound to the key id, it does
	// not open there.
	if _, err := pool.Exec(ctx, `UPDATE signing_keys SET sealed_seed = (SELECT sealed_seed FROM signing_keys WHERE id = 'K1')
		WHERE id = 'K2'`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Keys(ctx); err == nil || !strings.Contains(err.Error(), "key K2") {
		t.Errorf("moved seed: %v, want a refusal for K2", err)
	}
}

// TestRewrap: seeds written in clear are sealed; a move to a new KEK
// reseals every row, after which only the new KEK opens them; running it
// again changes nothing.
func TestRewrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustPool(t)
	clearStore := NewPGKeyStore(pool)
	k1, err := Rotate(ctx, clearStore, "K1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := rawSeeds(t, clearStore, "K1"); !bytes.Equal(c, k1.Private.Seed()) {
		t.Fatal("without a KEK the seed is expected in clear")
	}
	if _, err := clearStore.Rewrap(ctx, nil); err == nil {
		t.Fatal("rewrap without a KEK succeeded")
	}

	a := mustKEK(t)
	storeA := NewPGKeyStore(pool, WithKEK(a))
	k2, _ := GenerateKey("K2", t0)
	if err := storeA.Create(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if n, err := storeA.Rewrap(ctx, nil); err != nil || n != 1 {
		t.Fatalf("sealing the clear seeds: %d, %v; want 1 row", n, err)
	}
	if c, s := rawSeeds(t, storeA, "K1"); c != nil || bytes.Contains(s, k1.Private.Seed()) {
		t.Fatal("K1 still in clear after sealing")
	}

	b := mustKEK(t)
	storeB := NewPGKeyStore(pool, WithKEK(b))
	if _, err := storeB.Rewrap(ctx, nil); !errors.Is(err, ErrWrongKEK) || !strings.Contains(err.Error(), a.Fingerprint()) {
		t.Fatalf("rewrap without the old KEK: %v, want ErrWrongKEK naming kek %s", err, a.Fingerprint())
	}
	if _, err := storeB.Rewrap(ctx, mustKEK(t)); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("rewrap with a wrong old KEK: %v, want ErrWrongKEK", err)
	}
	if _, err := storeA.Keys(ctx); err != nil {
		t.Fatalf("a failed rewrap changed rows: %v", err)
	}
	if n, err := storeB.Rewrap(ctx, a); err != nil || n != 2 {
		t.Fatalf("rewrap A→B: %d, %v; want 2 rows", n, err)
	}
	if n, err := storeB.Rewrap(ctx, a); err != nil || n != 0 {
		t.Fatalf("rewrap again: %d, %v; want nothing to do", n, err)
	}
	if _, err := storeA.Keys(ctx); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("old KEK after rewrap: %v, want ErrWrongKEK", err)
	}
	keys, err := storeB.Keys(ctx)
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0].Private, k1.Private) || !bytes.Equal(keys[1].Private, k2.Private) {
		t.Fatalf("after rewrap: %v, %v", keys, err)
	}
}

func TestParseKEK(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"64 hex digits", strings.Repeat("ab", 32), true},
		{"with line break", strings.Repeat("ab", 32) + "\n", true},
		{"too short", strings.Repeat("ab", 31), false},
		{"too long", strings.Repeat("ab", 33), false},
		{"not hex", strings.Repeat("zz", 32), false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKEK([]byte(tc.text))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseKEK: %v, want ok=%v", err, tc.ok)
			}
			if k != nil && strings.Contains(k.String()+k.GoString(), tc.text[:16]) {
				t.Fatalf("%v prints the key", k)
			}
		})
	}
}

// TestPublicsOnly: listing keys needs no KEK and reads no private half.
func TestPublicsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustPool(t)
	k, err := Rotate(ctx, NewPGKeyStore(pool, WithKEK(mustKEK(t))), "K1", t0)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewPGKeyStore(pool, WithPublicsOnly()).Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Private != nil || !bytes.Equal(keys[0].Public, k.Public) {
		t.Fatalf("publics only: %v, %v", keys, err)
	}
}
