package ledger

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestStmtRows: a statement read by Rows (an outbox lease) is a unit like
// any other: batched with its neighbours, each reader gets exactly its own
// statement's rows and Changed counts them; a reader that fails (a lying
// peer: rows it cannot take) refuses only its unit, whose statement then
// changed nothing; MustChange with no row refuses with ErrUnchanged.
func TestStmtRows(t *testing.T) {
	t.Parallel()
	withAndWithoutBatching(t, 5*time.Millisecond, func(t *testing.T, l *Ledger, pool *pgxpool.Pool) {
		ctx := context.Background()
		take := func(ids []uuid.UUID, got *[]uuid.UUID, fail bool) *Stmt {
			return &Stmt{SQL: `DELETE FROM scratch WHERE id = ANY($1) RETURNING id`, Args: []any{ids}, MustChange: true,
				Rows: func(rows pgx.Rows) error {
					var err error
					*got, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
					if err == nil && fail {
						err = errors.New("reader refuses the rows")
					}
					return err
				}}
		}
		// Teach the ledger the text (the first run of a text is sent alone).
		var none []uuid.UUID
		if _, err := l.Commit(ctx, Unit{Stmt: take([]uuid.UUID{uuid.New()}, &none, false)}); !errors.Is(err, ErrUnchanged) {
			t.Fatalf("nothing to take: %v, want ErrUnchanged", err)
		}

		const units = 12
		sets := make([][]uuid.UUID, units)
		for i := range sets {
			for range 3 {
				id := uuid.New()
				if _, err := pool.Exec(ctx, `INSERT INTO scratch (id) VALUES ($1)`, id); err != nil {
					t.Fatal(err)
				}
				sets[i] = append(sets[i], id)
			}
		}
		const liar = 5
		got := make([][]uuid.UUID, units)
		res := make([]Result, units)
		errs := make([]error, units)
		done := make(chan struct{})
		for i := range units {
			go func() {
				u := Unit{Stmt: take(sets[i], &got[i], i == liar)}
				if i%4 == 0 {
					u.Transfers = []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), 1)}
				}
				res[i], errs[i] = l.Commit(ctx, u)
				done <- struct{}{}
			}()
		}
		for range units {
			<-done
		}
		for i := range units {
			left := 0
			for _, id := range sets[i] {
				left += scratchCount(t, pool, id)
			}
			if i == liar {
				if errs[i] == nil || left != 3 {
					t.Errorf("lying reader: err %v, %d of its rows left; want its error and all 3", errs[i], left)
				}
				continue
			}
			slices.SortFunc(got[i], func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
			want := slices.Clone(sets[i])
			slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
			if errs[i] != nil || res[i].Changed != 3 || !slices.Equal(got[i], want) || left != 0 {
				t.Errorf("unit %d: err %v, changed %d, read %v (want %v), %d rows left", i, errs[i], res[i].Changed, got[i], want, left)
			}
		}
		mustCheck(t, pool)
	})
}

// TestStmtUnitRoundTrips: with batching on, a statement unit costs its
// batch BEGIN, the one pipelined round trip of its statement and COMMIT:
// a lease read by Rows has no savepoint or round trip of its own.
func TestStmtUnitRoundTrips(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t, WithBatch(64, 0))
	mustScratch(t, pool)
	ctx := context.Background()
	var got []uuid.UUID
	st := func() *Stmt {
		return &Stmt{SQL: `DELETE FROM scratch WHERE id = ANY($1) RETURNING id`, Args: []any{[]uuid.UUID{uuid.New()}},
			Rows: func(rows pgx.Rows) error {
				var err error
				got, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
				return err
			}}
	}
	if _, err := l.Exec(ctx, st()); err != nil { // teaches the text
		t.Fatal(err)
	}
	before := l.Stats().RoundTrips
	if _, err := l.Exec(ctx, st()); err != nil {
		t.Fatal(err)
	}
	if n := l.Stats().RoundTrips - before; n != 3 {
		t.Errorf("a known statement unit took %d round trips, want 3 (BEGIN, the statement, COMMIT)", n)
	}
	if len(got) != 0 {
		t.Errorf("read %v from a statement that deleted nothing", got)
	}
}
