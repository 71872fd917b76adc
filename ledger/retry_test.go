package ledger

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	softatm "github.com/softatm/softatm"
)

func mustRows(tb testing.TB, pool *pgxpool.Pool, vals ...int64) {
	tb.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE kv (id INT PRIMARY KEY, v BIGINT NOT NULL)`); err != nil {
		tb.Fatal(err)
	}
	for i, v := range vals {
		if _, err := pool.Exec(ctx, `INSERT INTO kv (id, v) VALUES ($1, $2)`, i+1, v); err != nil {
			tb.Fatal(err)
		}
	}
}

func rowValue(tb testing.TB, pool *pgxpool.Pool, id int) int64 {
	tb.Helper()
	var v int64
	if err := pool.QueryRow(context.Background(), `SELECT v FROM kv WHERE id = $1`, id).Scan(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// barrier lets n transactions pass only once all n reached it, on their
// first attempt only, so that they are certain to overlap.
type barrier struct{ wg sync.WaitGroup }

func newBarrier(n int) *barrier { b := &barrier{}; b.wg.Add(n); return b }

func (b *barrier) wait(attempt int) {
	if attempt == 1 {
		b.wg.Done()
		b.wg.Wait()
	}
}

// TestRunTxRetriesConcurrentUpdate: two transactions read and increment the
// same row. Without a retry one increment is lost or fails; with RunTx both
// land.
func TestRunTxRetriesConcurrentUpdate(t *testing.T) {
	t.Parallel()
	pool := mustPool(t)
	mustRows(t, pool, 0)
	ctx := context.Background()
	var attempts atomic.Int64
	b := newBarrier(2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			attempt := 0
			errs[i] = RunTx(ctx, pool, 5, func(tx pgx.Tx) error {
				attempt++
				attempts.Add(1)
				var v int64
				if err := tx.QueryRow(ctx, `SELECT v FROM kv WHERE id = 1`).Scan(&v); err != nil {
					return err
				}
				b.wait(attempt)
				_, err := tx.Exec(ctx, `UPDATE kv SET v = $1 WHERE id = 1`, v+1)
				return err
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if v := rowValue(t, pool, 1); v != 2 {
		t.Fatalf("v = %d, want 2", v)
	}
	if a := attempts.Load(); a < 3 {
		t.Fatalf("%d attempts: the conflict did not happen, the test proves nothing", a)
	}
}

// TestRunTxRetriesWriteSkew: two transactions each read both rows and take
// 60 from their own row if the sum stays >= 0. Serially only one can; under
// SERIALIZABLE the second must be re-run and then refuse.
func TestRunTxRetriesWriteSkew(t *testing.T) {
	t.Parallel()
	pool := mustPool(t)
	mustRows(t, pool, 50, 50)
	ctx := context.Background()
	var attempts atomic.Int64
	b := newBarrier(2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			attempt := 0
			errs[i] = RunTx(ctx, pool, 5, func(tx pgx.Tx) error {
				attempt++
				attempts.Add(1)
				var sum int64
				if err := tx.QueryRow(ctx, `SELECT sum(v)::BIGINT FROM kv`).Scan(&sum); err != nil {
					return err
				}
				b.wait(attempt)
				if sum-60 < 0 {
					return softatm.Errorf(softatm.ELimit, "sum would go below zero")
				}
				_, err := tx.Exec(ctx, `UPDATE kv SET v = v - 60 WHERE id = $1`, i+1)
				return err
			})
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, err := range errs {
		switch softatm.ErrorCode(err) {
		case "":
			ok++
		case softatm.ELimit:
			refused++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d succeeded, %d refused; want 1 and 1", ok, refused)
	}
	if sum := rowValue(t, pool, 1) + rowValue(t, pool, 2); sum != -20+60 {
		t.Fatalf("sum = %d, want 40", sum)
	}
	if a := attempts.Load(); a < 3 {
		t.Fatalf("%d attempts: the write skew was not caught by a retry", a)
	}
}

// TestRunTxRetriesDeadlock: two transactions lock two rows in opposite
// orders. PostgreSQL kills one with 40P01 (after deadlock_timeout, 1 s by
// default); RunTx re-runs it.
func TestRunTxRetriesDeadlock(t *testing.T) {
	t.Parallel()
	pool := mustPool(t)
	mustRows(t, pool, 0, 0)
	ctx := context.Background()
	var attempts atomic.Int64
	b := newBarrier(2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, second := 1, 2
			if i == 1 {
				first, second = 2, 1
			}
			attempt := 0
			errs[i] = RunTx(ctx, pool, 5, func(tx pgx.Tx) error {
				attempt++
				attempts.Add(1)
				// Lock without reading first, so the snapshot does not make
				// the loser fail with 40001 instead of deadlocking.
				if _, err := tx.Exec(ctx, `UPDATE kv SET v = v + 1 WHERE id = $1`, first); err != nil {
					return err
				}
				b.wait(attempt)
				_, err := tx.Exec(ctx, `UPDATE kv SET v = v + 1 WHERE id = $1`, second)
				return err
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if v1, v2 := rowValue(t, pool, 1), rowValue(t, pool, 2); v1 != 2 || v2 != 2 {
		t.Fatalf("rows %d %d, want 2 2", v1, v2)
	}
	if a := attempts.Load(); a < 3 {
		t.Fatalf("%d attempts: no deadlock was retried", a)
	}
}

// TestRunTxGivesUp: a transaction that always conflicts ends after the
// bounded retries with EUnavailable.
func TestRunTxGivesUp(t *testing.T) {
	t.Parallel()
	pool := mustPool(t)
	ctx := context.Background()
	n := 0
	err := RunTx(ctx, pool, 2, func(tx pgx.Tx) error {
		n++
		_, err := tx.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '40001'; END $$`)
		return err
	})
	wantCode(t, err, softatm.EUnavailable)
	if n != 3 {
		t.Fatalf("%d attempts, want 3 (1 + 2 retries)", n)
	}
}

// TestRunTxRetriesALostConnection: the server ends the transaction's
// connection while it runs (before COMMIT). PostgreSQL rolled that attempt
// back, so RunTx re-runs it on another connection, and the write lands once.
func TestRunTxRetriesALostConnection(t *testing.T) {
	t.Parallel()
	pool := mustPool(t)
	mustRows(t, pool, 0)
	ctx := context.Background()
	attempts := 0
	err := RunTx(ctx, pool, 3, func(tx pgx.Tx) error {
		attempts++
		if _, err := tx.Exec(ctx, `UPDATE kv SET v = v + 1 WHERE id = 1`); err != nil {
			return err
		}
		if attempts == 1 {
			// Another connection ends this one's backend, mid-transaction.
			var pid int
			if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				return err
			}
			if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
				t.Fatal(err)
			}
		}
		_, err := tx.Exec(ctx, `UPDATE kv SET v = v + 10 WHERE id = 1`)
		return err
	})
	if err != nil || attempts != 2 {
		t.Fatalf("RunTx: err %v after %d attempts, want success on the second", err, attempts)
	}
	if v := rowValue(t, pool, 1); v != 11 {
		t.Fatalf("row = %d, want 11 (the first attempt rolled back, the second committed)", v)
	}
}
