package atmswitch_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/switch"
)

// statsFlushMax bounds the wait for the server's backends to publish
// their table counters (PostgreSQL 15 flushes a backend's pending counters
// at most once a second while it is busy, and soon after it goes idle).
const statsFlushMax = 20 * time.Second

// tableUpdates returns withdrawals' update counters, all and HOT, once
// they count at least want updates.
func tableUpdates(t *testing.T, pool *pgxpool.Pool, want int64) (upd, hot int64) {
	t.Helper()
	deadline := time.Now().Add(statsFlushMax)
	for {
		// Each read is a transaction of its own: no cached snapshot.
		if err := pool.QueryRow(context.Background(), `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
			WHERE relid = 'withdrawals'::regclass`).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		if upd >= want || time.Now().After(deadline) {
			return upd, hot
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClaimAndCompletionAreHOTUpdates: of a withdrawal's four updates
// (reserve, claim, paid, completed), the claim and the completion change
// no indexed column, so PostgreSQL writes them as heap-only (HOT) updates:
// no new entry in any of the table's indexes. state must not be indexed
// for that (migration 00051); the sweeper reads due_at, which neither
// move changes.
func TestClaimAndCompletionAreHOTUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 500_000) // insert, then the reserve
	if is.Withdrawal.State != atmswitch.StateReserved {
		t.Fatalf("issued in state %s", is.Withdrawal.State)
	}
	upd, hot := tableUpdates(t, e.pool, 1)
	if upd != 1 {
		t.Fatalf("%d updates after the reserve, want 1 (the test counts each move's)", upd)
	}
	var id uuid.UUID
	for _, step := range []struct {
		name    string
		do      func() error
		hot     bool
		inState atmswitch.State
	}{
		{"claim", func() error {
			w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
			id = w.ID
			return err
		}, true, atmswitch.StateClaimed},
		// The payout sets paid_at, post_office and business_date, which
		// the payouts' index holds: it cannot be HOT.
		{"paid", func() error { _, err := e.svc.Confirm(ctx, teller1, id); return err }, false, atmswitch.StatePaid},
		{"completed", func() error { e.drain(t); return nil }, true, atmswitch.StateCompleted},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if s := e.state(t, is.Withdrawal.ID); s != step.inState {
			t.Fatalf("%s: state %s, want %s", step.name, s, step.inState)
		}
		u, h := tableUpdates(t, e.pool, upd+1)
		if u != upd+1 {
			t.Fatalf("%s: %d updates, want %d", step.name, u, upd+1)
		}
		if got := h == hot+1; got != step.hot {
			t.Errorf("%s: HOT %v, want %v", step.name, got, step.hot)
		}
		upd, hot = u, h
	}
	t.Logf("withdrawals: %d of %d updates HOT", hot, upd)
}
