package atmswitch_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/softatm/softatm"
	atmswitch "github.com/softatm/softatm/switch"
)

// waitFor starts a Wait for id to leave from and returns where its answer
// will come, once the Wait is registered (so a move after it must wake it).
func (e *env) waitFor(t *testing.T, bank string, id uuid.UUID, from atmswitch.State) <-chan atmswitch.Withdrawal {
	t.Helper()
	before := atmswitch.Waiters(id)
	got := make(chan atmswitch.Withdrawal, 1)
	go func() {
		w, err := e.svc.Wait(context.Background(), bank, id, from, 20*time.Second)
		if err != nil {
			t.Errorf("wait: %v", err)
		}
		got <- w
	}()
	for atmswitch.Waiters(id) == before {
		time.Sleep(time.Millisecond)
	}
	return got
}

// TestWaitWokenByEveryMove: a waiting GET is answered by the move that
// changes the state (the claim, a direct write; the payout, a batch; the
// completion, the outbox's), not by its re-reads, which this test turns
// off: without the wake-up each wait would end after 20 s with the old
// state.
func TestWaitWokenByEveryMove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	atmswitch.SetRecheck(e.svc, time.Hour)
	ctx := context.Background()
	is := e.issue(t, acctRich, 500_000)
	id := is.Withdrawal.ID
	steps := []struct {
		from, want atmswitch.State
		move       func()
	}{
		{atmswitch.StateReserved, atmswitch.StateClaimed, func() {
			if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
				t.Fatal(err)
			}
		}},
		{atmswitch.StateClaimed, atmswitch.StatePaid, func() {
			if _, err := e.svc.Confirm(ctx, teller1, id); err != nil {
				t.Fatal(err)
			}
		}},
		{atmswitch.StatePaid, atmswitch.StateCompleted, func() { e.drain(t) }},
	}
	for _, s := range steps {
		got := e.waitFor(t, "MB", id, s.from)
		s.move()
		if w := <-got; w.State != s.want {
			t.Fatalf("waiting while %s: answered %s, want %s", s.from, w.State, s.want)
		}
	}
	if n := atmswitch.Waiters(id); n != 0 {
		t.Fatalf("%d waits still registered", n)
	}
}

// TestWaitAnswersWithoutWaiting: a state already changed, or a wait that
// runs out, is answered with the row as it is; another bank's withdrawal
// is not found, and a wait out of bounds or a state that does not exist is
// refused, before anything is read or waited for.
func TestWaitAnswersWithoutWaiting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.issue(t, acctRich, 500_000).Withdrawal.ID
	w, err := e.svc.Wait(ctx, "MB", id, atmswitch.StateClaimed, 20*time.Second)
	if err != nil || w.State != atmswitch.StateReserved {
		t.Fatalf("already not claimed: %v, %v", w.State, err)
	}
	w, err = e.svc.Wait(ctx, "MB", id, atmswitch.StateReserved, 50*time.Millisecond)
	if err != nil || w.State != atmswitch.StateReserved || w.ID != id {
		t.Fatalf("wait ran out: %+v, %v", w, err)
	}
	for _, c := range []struct {
		name, bank string
		from       atmswitch.State
		wait       time.Duration
		code       string
	}{
		{"another bank's withdrawal", "VCB", atmswitch.StateReserved, time.Second, softatm.ENotFound},
		{"no wait", "MB", atmswitch.StateReserved, 0, softatm.EInvalid},
		{"a wait too long", "MB", atmswitch.StateReserved, atmswitch.MaxWait + time.Second, softatm.EInvalid},
		{"no such state", "MB", "held", time.Second, softatm.EInvalid},
	} {
		_, err := e.svc.Wait(ctx, c.bank, id, c.from, c.wait)
		if got := softatm.ErrorCode(err); got != c.code {
			t.Errorf("%s: %v (code %q), want %q", c.name, err, got, c.code)
		}
	}
}
