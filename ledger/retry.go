package ledger

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	softatm "github.com/softatm/softatm"
)

// Retry settings of RunTx.
const (
	// DefaultMaxRetries bounds how many times one transaction is re-run
	// after a serialization failure or a deadlock.
	DefaultMaxRetries = 20
	// retryBackoffBase is the first backoff; it doubles per attempt.
	retryBackoffBase = 2 * time.Millisecond
	// retryBackoffMax caps one backoff, so that a busy hot account does not
	// push a teller's confirm past its deadline.
	retryBackoffMax = 100 * time.Millisecond
)

// retriesTotal counts every re-run of a transaction in this process; it is
// exported through Retries for metrics.
var retriesTotal atomic.Int64

// Retries returns how many times RunTx has re-run a transaction in this
// process since it started (a counter for metrics).
func Retries() int64 { return retriesTotal.Load() }

// RunTx runs fn in a SERIALIZABLE transaction and re-runs the WHOLE
// transaction, as a new one, when it fails with a serialization failure
// (40001) or a deadlock (40P01), at most maxRetries times, with jittered
// exponential backoff. fn must only touch the database: it may run several
// times. The error of COMMIT is returned and retried like any other.
//
// It is crdb.ExecuteCtx around pgx.BeginTxFunc, deliberately not
// crdbpgxv5.ExecuteTx: that one retries inside one transaction with
// SAVEPOINT cockroach_restart and ignores the COMMIT error, which on
// PostgreSQL can report success for a write-skew transaction that was
// rolled back.
//
// When the retries run out the error has code softatm.EUnavailable (the
// database is too busy); any other error of fn is returned unchanged.
func RunTx(ctx context.Context, pool *pgxpool.Pool, maxRetries int, fn func(pgx.Tx) error) error {
	return runTx(ctx, pool, maxRetries, serializable, fn)
}

// serializable is how RunTx begins; lazyCommit how the committer begins a
// batch of lazy units (LazyCommit): the same isolation, and a COMMIT that
// answers before its WAL is flushed (and, with a synchronous standby,
// before the standby has it). One round trip all the same: pgx sends a
// BeginQuery as one simple query.
var (
	serializable = pgx.TxOptions{IsoLevel: pgx.Serializable}
	lazyCommit   = pgx.TxOptions{BeginQuery: "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL synchronous_commit = off"}
)

func runTx(ctx context.Context, pool *pgxpool.Pool, maxRetries int, begin pgx.TxOptions, fn func(pgx.Tx) error) error {
	if maxRetries < 0 {
		maxRetries = 0
	}
	attempt := 0
	err := crdb.ExecuteCtx(crdb.WithMaxRetries(ctx, maxRetries), func(ctx context.Context, _ ...any) error {
		if attempt > 0 {
			retriesTotal.Add(1)
			if err := sleepBackoff(ctx, attempt); err != nil {
				return err
			}
		}
		attempt++
		err := runOnce(ctx, pool, begin, fn)
		if isDeadlock(err) {
			// crdb only retries 40001; a deadlock victim is just as safe to re-run.
			return retryableError{err}
		}
		return err
	})
	var maxErr *crdb.MaxRetriesExceededError
	if errors.As(err, &maxErr) {
		return softatm.Wrap(softatm.EUnavailable, "the database is busy, try again", err)
	}
	var re retryableError
	if errors.As(err, &re) {
		return re.err
	}
	return err
}

// runOnce runs one attempt: BEGIN, fn, COMMIT. A connection lost before
// COMMIT was sent (at BEGIN, or while fn ran) lost an open transaction,
// which PostgreSQL rolls back: that attempt is re-run on another
// connection. A connection lost during COMMIT leaves the outcome unknown;
// that error is returned, for the caller to settle by reading back.
func runOnce(ctx context.Context, pool *pgxpool.Pool, begin pgx.TxOptions, fn func(pgx.Tx) error) error {
	tx, err := pool.BeginTx(ctx, begin)
	if err != nil {
		if lostConnection(ctx, err, nil) {
			return retryableError{err}
		}
		return err
	}
	if err := fn(tx); err != nil {
		lost := lostConnection(ctx, err, tx) // before Rollback hands the connection back
		_ = tx.Rollback(ctx)
		if lost {
			return retryableError{err}
		}
		return err
	}
	return tx.Commit(ctx)
}

// lostConnection reports whether err is the end of the connection rather
// than the server's answer or the caller's cancellation: ctx still live,
// and the connection closed (with a transaction) or the error a network
// failure or a FATAL one from the server (without).
func lostConnection(ctx context.Context, err error, tx pgx.Tx) bool {
	if ctx.Err() != nil || IsRetryable(err) {
		return false
	}
	if tx != nil {
		return tx.Conn().IsClosed()
	}
	return IsConnectionLost(err)
}

// IsConnectionLost reports whether err is a failure of the connection (a
// network error, or a FATAL error from the server, which then closes it)
// rather than the server's answer. A read that failed so may be re-run.
func IsConnectionLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Severity == "FATAL"
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return errors.As(err, &netErr) || errors.As(err, &connectErr) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) || errors.Is(err, pgconn.ErrConnClosed) ||
		err.Error() == "conn closed" // pgconn's unexported lock error on a closed connection
}

// IsRetryable reports whether err is a serialization failure or a deadlock,
// the two errors that RunTx re-runs a transaction for.
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var re retryableError
	return errors.As(err, &re)
}

// Retryable marks err so that RunTx re-runs the transaction, for a caller
// that detects a conflict of its own (a racing insert of the same key).
func Retryable(err error) error { return retryableError{err} }

func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "40P01"
}

// retryableError makes crdb's retry loop, which looks only for SQLSTATE
// 40001, also retry a deadlock.
type retryableError struct{ err error }

func (e retryableError) Error() string    { return e.err.Error() }
func (e retryableError) Unwrap() error    { return e.err }
func (e retryableError) SQLState() string { return "40001" }

func sleepBackoff(ctx context.Context, attempt int) error {
	d := retryBackoffBase << min(attempt-1, 16)
	if d > retryBackoffMax || d <= 0 {
		d = retryBackoffMax
	}
	// Full jitter: spreads the retries of transactions that collided.
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
