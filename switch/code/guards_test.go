package code

// Tests that each kill a mutation of one guard (issue 20; the list is
// scripts/mutate/guards.txt). Each was seen to fail with its guard changed.

import (
	"context"
	"testing"
	"time"

	"github.com/softatm/softatm"
)

// TestVerifyRefusesTooLongALife: a genuine signature on a code that lives
// longer than any key may sign for (max lifetime plus skew) is refused as
// invalid: the signer was misconfigured or its key stolen, and such a code
// would outlive its key's retirement window.
func TestVerifyRefusesTooLongALife(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	const skew = 30 * time.Second
	kr, store := mustKeyring(t, clk, WithMaxLifetime(time.Hour), WithSkew(skew))
	// The same key, behind a keyring that allows a day.
	lax := NewKeyring(store, WithClock(clk.now), WithRefresh(0), WithMaxLifetime(24*time.Hour))
	if err := lax.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		life time.Duration
		want string
	}{
		{time.Hour, ""},
		{time.Hour + skew, ""},
		{time.Hour + skew + time.Second, softatm.ECodeInvalid},
		{23 * time.Hour, softatm.ECodeInvalid},
	} {
		s, err := lax.Sign(ctx, samplePayload(t0.Add(tc.life)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = kr.Verify(ctx, s)
		if got := softatm.ErrorCode(err); got != tc.want {
			t.Errorf("a code living %s: %v, want %q", tc.life, err, tc.want)
		}
	}
}
