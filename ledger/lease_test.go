package ledger

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// secondInstance is another pool on pool's database: what a second switch
// instance has.
func secondInstance(tb testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	tb.Helper()
	p2, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p2.Close)
	return p2
}

// twoInstanceLoad commits units on the same hot accounts from two
// ledgers (two instances) at once and returns how many transactions were
// re-run meanwhile.
func twoInstanceLoad(t *testing.T, opts ...Option) (reruns int64, a, b *Ledger) {
	t.Helper()
	const (
		workers = 6  // per instance
		units   = 40 // per worker
	)
	base := []Option{WithBatch(64, time.Millisecond)}
	a, pool := mustLedger(t, append(base, opts...)...)
	b = New(secondInstance(t, pool), append(base, opts...)...)
	t.Cleanup(b.Close)
	ctx := context.Background()
	before := Retries()
	var wg sync.WaitGroup
	for _, l := range []*Ledger{a, b} {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range units {
					u := Unit{Transfers: []Transfer{single(uuid.New(), TillCode("LS-001"), AccountSettlement, 1)}}
					if _, err := l.Commit(ctx, u); err != nil {
						t.Errorf("commit: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	reruns = Retries() - before
	if got, want := mustAccount(t, a, TillCode("LS-001")).DebitsPosted, int64(2*workers*units); got != want {
		t.Fatalf("till debited %d, want %d", got, want)
	}
	mustCheck(t, pool)
	return reruns, a, b
}

// TestCommitLockTakesTurns: two instances' committers on one database,
// both batching payouts to the same till, take turns under the commit
// lock: not one batch is rolled back and re-run (without the lock, their
// batches collide under SERIALIZABLE and come back). Not parallel: it
// reads the process-wide re-run counter.
func TestCommitLockTakesTurns(t *testing.T) {
	reruns, a, b := twoInstanceLoad(t, WithCommitLock("ledger"))
	sa, sb := a.LockStats(), b.LockStats()
	t.Logf("with the commit lock: %d re-runs; instance A took the lock %d times (waited %s), B %d (waited %s)",
		reruns, sa.Taken, sa.Wait.Round(time.Millisecond), sb.Taken, sb.Wait.Round(time.Millisecond))
	if reruns != 0 {
		t.Errorf("%d transactions re-run with the commit lock, want 0", reruns)
	}
	if sa.Taken == 0 || sb.Taken == 0 || sa.WaitedOut+sb.WaitedOut+sa.Failed+sb.Failed != 0 {
		t.Errorf("lock stats A %+v, B %+v: want both taking it, none waiting out or failing", sa, sb)
	}
}

// TestCommitLockFreedWhenHolderDies: an instance killed while it holds the
// commit lock frees it at once, because the lock is its session's row
// lock: the other instance's next batch waits while the holder lives, then
// runs under the lock as soon as the holder's connection ends (as kill -9
// ends it), without waiting for commitLockWaitMax.
func TestCommitLockFreedWhenHolderDies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, pool := mustLedger(t, WithBatch(64, 0), WithCommitLock("ledger"))
	// The other instance, holding the lock as its committer does.
	holder, err := secondInstance(t, pool).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, `INSERT INTO committer_locks (name) VALUES ('ledger') ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	var holderPID int
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `BEGIN ISOLATION LEVEL READ COMMITTED`); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT name FROM committer_locks WHERE name = 'ledger' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := b.Commit(ctx, Unit{Transfers: []Transfer{single(uuid.New(), TillCode("LS-001"), AccountSettlement, 5)}})
		done <- err
	}()
	const holdFor = 300 * time.Millisecond // well under commitLockWaitMax
	select {
	case err := <-done:
		t.Fatalf("the batch ran while the other instance held the lock (err %v)", err)
	case <-time.After(holdFor):
	}
	killed := time.Now()
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, holderPID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(commitLockWaitMax):
		t.Fatalf("no commit %s after the holder died", commitLockWaitMax)
	}
	st := b.LockStats()
	t.Logf("batch ran %s after the holder's connection ended; lock stats %+v", time.Since(killed).Round(time.Millisecond), st)
	if st.Taken != 1 || st.WaitedOut != 0 || st.Failed != 0 {
		t.Fatalf("lock stats %+v: want the lock taken once, after the holder died, not waited out", st)
	}
	if got := mustAccount(t, b, TillCode("LS-001")).DebitsPosted; got != 5 {
		t.Fatalf("till debited %d, want 5", got)
	}
}
