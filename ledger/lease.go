package ledger

// The commit lock: one committer at a time per database, across instances.
//
// Each switch instance has its own committer (batch.go), which batches the
// units of that instance. Two instances on one database then run two batch
// transactions at once; both touch the same hot rows (a till, a bank's
// receivable, in-flight), and under SERIALIZABLE one of them is rolled
// back and re-run, with all its units. The commit lock takes turns
// instead: before a batch, the committer locks its row of committer_locks
// (SELECT ... FOR UPDATE, in a READ COMMITTED transaction of its own, on a
// connection of its own), runs the batch on another connection, and
// releases the lock by rolling the lock transaction back (no WAL to wait
// for, so no synchronous-replication round trip). The other instance's
// committer waits on the row meanwhile, then runs its own batch: the
// batches no longer overlap, so they no longer collide.
//
// Why a row lock held by a session, and not a lease row with an expiry and
// a fencing token: correctness never depends on this lock. Every batch is
// still a SERIALIZABLE transaction with conditional updates, re-run on a
// conflict; the lock only keeps the two committers from wasting each
// other's work. So there is nothing to fence: a holder that lost its lock
// without knowing (its connection cut) and commits anyway is just back to
// the collision the lock avoids, never to a wrong result. A session's lock
// needs no clock and no expiry: PostgreSQL drops it the moment the
// holder's connection ends, so a kill -9 of the holder frees it at once
// (TestCommitLockFreedWhenHolderDies), and a failover ends it with the
// primary. Advisory locks would do the same on PostgreSQL but are outside
// the SQL the ledger keeps to (CockroachDB has none); SELECT ... FOR
// UPDATE and READ COMMITTED are in it.
//
// Waiting is bounded (commitLockWaitMax): past it the committer runs its
// batch without the lock, slower at worst, never stuck behind an instance
// that hangs while holding it, and does not ask again for
// commitLockBackoff. A lock session idle longer than commitLockIdleMax is
// ended by the server itself (idle_in_transaction_session_timeout), so a
// holder that hangs, or is cut off without its connection closing, frees
// the lock within that. A committer with units still queued keeps
// the lock for its next batch, at most commitLockStreakMax batches in a
// row, so that one lock round trip serves several batches under load and
// the other instance still gets its turn.

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Settings of the commit lock.
const (
	// commitLockWaitMax bounds the wait for the lock (and for the
	// connection that takes it). A batch takes milliseconds; a wait this
	// long means the holder hangs or the database is failing over.
	commitLockWaitMax = 2 * time.Second
	// commitLockReleaseTimeout bounds the ROLLBACK that releases it.
	commitLockReleaseTimeout = 2 * time.Second
	// commitLockStreakMax is how many batches in a row a committer with
	// units waiting may run under one lock before letting the other
	// instance's committer have a turn.
	commitLockStreakMax = 4
	// commitLockBackoff is how long a committer whose wait ran out (or
	// whose lock failed) runs its batches without asking again, so that a
	// holder that hangs costs it one wait, not one per batch.
	commitLockBackoff = 5 * time.Second
	// commitLockIdleMax ends, on the server, a lock session left idle that
	// long (idle_in_transaction_session_timeout): a holder that hangs or
	// is cut off without its connection closing frees the lock then. A
	// batch runs far shorter; one that does not merely loses the lock.
	commitLockIdleMax = "5s"
)

// WithCommitLock makes the committer take the database-wide commit lock
// name before each batch, so that the committers of several instances on
// one database (each with the same name) take turns instead of colliding.
// It needs a committer (WithBatch with more than one unit); "" (the
// default): no lock.
func WithCommitLock(name string) Option { return func(o *options) { o.commitLock = name } }

// commitLock is the committer's hold on its lock. Only the committer
// goroutine touches tx and streak.
type commitLock struct {
	tx      pgx.Tx // the lock transaction while the lock is held; nil otherwise
	streak  int    // batches run under the current hold
	ensured bool   // the lock's row exists
	// skipUntil: after a wait ran out or failed, batches until then run
	// without asking (commitLockBackoff).
	skipUntil time.Time

	// For LockStats.
	taken, waitedOut, failed atomic.Int64
	waitNanos                atomic.Int64
}

// LockStats are the commit lock's counters since New, for metrics.
type LockStats struct {
	Taken     int64         // holds taken
	WaitedOut int64         // waits that reached commitLockWaitMax: the batch ran without the lock
	Failed    int64         // holds that failed for another reason (no database): the batch ran without it
	Wait      time.Duration // time spent waiting for the lock
}

// LockStats returns the commit lock's counters (zero without a lock).
func (l *Ledger) LockStats() LockStats {
	c := &l.lock
	return LockStats{Taken: c.taken.Load(), WaitedOut: c.waitedOut.Load(), Failed: c.failed.Load(),
		Wait: time.Duration(c.waitNanos.Load())}
}

// holdCommitLock takes the commit lock before a batch, unless this
// committer still holds it from the last one. A failure is counted, not
// returned: the batch runs without the lock.
func (l *Ledger) holdCommitLock() {
	if l.opt.commitLock == "" || l.queue == nil || l.lock.tx != nil {
		return
	}
	start := time.Now()
	if start.Before(l.lock.skipUntil) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitLockWaitMax)
	defer cancel()
	tx, err := l.takeCommitLock(ctx)
	l.lock.waitNanos.Add(int64(time.Since(start)))
	switch {
	case err == nil:
		l.lock.tx, l.lock.streak = tx, 0
		l.lock.taken.Add(1)
	case ctx.Err() != nil:
		l.lock.waitedOut.Add(1)
		l.lock.skipUntil = time.Now().Add(commitLockBackoff)
	default:
		l.lock.failed.Add(1)
		l.lock.skipUntil = time.Now().Add(commitLockBackoff)
	}
}

// takeCommitLock locks the lock's row in a new READ COMMITTED transaction.
// The row is created, committed, the first time: a row inserted by the
// lock transaction itself would vanish with its rollback.
func (l *Ledger) takeCommitLock(ctx context.Context) (pgx.Tx, error) {
	if !l.lock.ensured {
		if _, err := l.pool.Exec(ctx, `INSERT INTO committer_locks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`,
			l.opt.commitLock); err != nil {
			return nil, err
		}
		l.lock.ensured = true
	}
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	var name string
	_, err = tx.Exec(ctx, `SET LOCAL idle_in_transaction_session_timeout = '`+commitLockIdleMax+`'`)
	if err == nil {
		err = tx.QueryRow(ctx, `SELECT name FROM committer_locks WHERE name = $1 FOR UPDATE`, l.opt.commitLock).Scan(&name)
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), commitLockReleaseTimeout)
		_ = tx.Rollback(rctx)
		cancel()
		return nil, err
	}
	return tx, nil
}

// passCommitLock, after a batch, releases the lock unless units are
// waiting and the streak allows one more batch under it. final releases
// it in any case (the committer stops).
func (l *Ledger) passCommitLock(final bool) {
	if l.lock.tx == nil {
		return
	}
	l.lock.streak++
	if !final && len(l.queue) > 0 && l.lock.streak < commitLockStreakMax {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitLockReleaseTimeout)
	defer cancel()
	// A rollback that fails (the connection is gone) released the lock
	// with the connection.
	_ = l.lock.tx.Rollback(ctx)
	l.lock.tx = nil
}
