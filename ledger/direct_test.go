package ledger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/faultproxy"
)

// mustCASLedger is a batching ledger on a fresh database with a table of
// rows in states, cas, for compare-and-set statements.
func mustCASLedger(t *testing.T) (*Ledger, *pgxpool.Pool) {
	t.Helper()
	l, pool := mustLedger(t, WithBatch(64, time.Millisecond))
	if _, err := pool.Exec(context.Background(), `CREATE TABLE cas (id UUID PRIMARY KEY, state TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return l, pool
}

func TestDirect(t *testing.T) {
	t.Parallel()
	l, pool := mustCASLedger(t)
	ctx := context.Background()
	id := uuid.New()
	move := func(from, to string) *Stmt {
		return &Stmt{SQL: `UPDATE cas SET state = $3 WHERE id = $1 AND state = $2`, Args: []any{id, from, to}, MustChange: true}
	}

	// A first row; the same again breaks its key.
	insert := &Stmt{SQL: `INSERT INTO cas (id, state) VALUES ($1, 'a')`, Args: []any{id}}
	if n, err := l.Direct(ctx, insert); err != nil || n != 1 {
		t.Fatalf("insert: %d %v", n, err)
	}
	if _, err := l.Direct(ctx, insert); !isUniqueViolation(err) {
		t.Fatalf("the same row again: %v, want a unique violation", err)
	}
	// A compare-and-set: applies once.
	if n, err := l.Direct(ctx, move("a", "b")); err != nil || n != 1 {
		t.Fatalf("a -> b: %d %v", n, err)
	}
	if _, err := l.Direct(ctx, move("a", "b")); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("a -> b again: %v, want ErrUnchanged", err)
	}
	// Its own transaction, READ COMMITTED; a RETURNING row is read.
	var iso string
	if n, err := l.Direct(ctx, &Stmt{SQL: `UPDATE cas SET state = 'c' WHERE id = $1 RETURNING current_setting('transaction_isolation')`,
		Args: []any{id}, Row: func(r pgx.Row) error { return r.Scan(&iso) }}); err != nil || n != 1 || iso != "read committed" {
		t.Fatalf("returning: %d %v, isolation %q", n, err, iso)
	}
	// A row its Row refuses is rolled back, as a unit's would be.
	refused := errors.New("refused")
	if _, err := l.Direct(ctx, &Stmt{SQL: `UPDATE cas SET state = 'd' WHERE id = $1 RETURNING state`, Args: []any{id},
		Row: func(pgx.Row) error { return refused }}); !errors.Is(err, refused) {
		t.Fatalf("a refused row: %v", err)
	}
	var st string
	if err := pool.QueryRow(ctx, `SELECT state FROM cas WHERE id = $1`, id).Scan(&st); err != nil || st != "c" {
		t.Fatalf("after a refused row: state %q %v, want c (rolled back)", st, err)
	}
	// No business date: it has no batch to be dated by.
	if _, err := l.Direct(ctx, &Stmt{SQL: `SELECT $1`, Args: []any{BusinessDateArg}}); softatm.ErrorCode(err) != softatm.EInvalid {
		t.Fatalf("with a business date: %v, want invalid", err)
	}
	if st := l.Stats(); st.DirectUnits != 4 || st.Units != 0 {
		t.Fatalf("stats %+v, want 4 direct statements committed (not the refused insert) and no batch unit", st)
	}
}

// A direct compare-and-set that meets a batch's uncommitted write of its
// row waits for the batch and judges its WHERE on the row the batch left.
func TestDirectWaitsForTheBatchWritingItsRow(t *testing.T) {
	t.Parallel()
	l, pool := mustCASLedger(t)
	ctx := context.Background()
	id := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO cas VALUES ($1, 'reserved')`, id); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	batch := make(chan error, 1)
	go func() {
		// The sweeper's expiry, in a batch that holds its write a while.
		batch <- l.Run(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE cas SET state = 'expired' WHERE id = $1 AND state = 'reserved'`, id); err != nil {
				return err
			}
			select {
			case <-wrote:
			default:
				close(wrote)
			}
			time.Sleep(300 * time.Millisecond)
			return nil
		})
	}()
	<-wrote
	// A claim of the reserved code meanwhile.
	_, err := l.Direct(ctx, &Stmt{SQL: `UPDATE cas SET state = 'claimed' WHERE id = $1 AND state = 'reserved'`, Args: []any{id}, MustChange: true})
	if berr := <-batch; berr != nil {
		t.Fatal(berr)
	}
	if !errors.Is(err, ErrUnchanged) {
		t.Fatalf("claim of a code the batch expired: %v, want ErrUnchanged", err)
	}
	var st string
	if err := pool.QueryRow(ctx, `SELECT state FROM cas WHERE id = $1`, id).Scan(&st); err != nil || st != "expired" {
		t.Fatalf("state %q %v, want expired", st, err)
	}
}

// A connection lost after a pipelined COMMIT went out leaves the outcome
// unknown: the statement is not run again, and the caller learns that it
// cannot tell (a second run would have reported a success, or the row's
// key taken, for a first run that may have committed).
func TestDirectLostAfterCommitIsNotRunAgain(t *testing.T) {
	t.Parallel()
	_, direct := mustCASLedger(t)
	ctx := context.Background()
	cfg := direct.Config().Copy()
	px, err := faultproxy.New(fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	host, port, _ := net.SplitHostPort(px.Addr())
	cfg.ConnConfig.Host = host
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Port = uint16(p)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	l := New(pool, WithBatch(64, time.Millisecond))
	t.Cleanup(l.Close)
	if err := pool.Ping(ctx); err != nil { // a connection, signed on, before the fault
		t.Fatal(err)
	}

	id := uuid.New()
	px.CutAfter(faultproxy.Downstream, 1) // the first byte of the pipeline's answers, then the connection is reset
	_, err = l.Direct(ctx, &Stmt{SQL: `INSERT INTO cas (id, state) VALUES ($1, 'a')`, Args: []any{id}})
	if err == nil || isUniqueViolation(err) || !IsConnectionLost(err) {
		t.Fatalf("insert with its answer lost: %v, want the lost connection itself (unknown outcome)", err)
	}
	var n int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM cas WHERE id = $1`, id).Scan(&n); err != nil || n > 1 {
		t.Fatalf("rows %d (%v), want at most 1", n, err)
	}
}
