package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	softatm "github.com/softatm/softatm"
)

// TestBatchSeesItsOwnTransfers runs, in one batch, units that depend on
// each other: the batch checks transfers in memory against what it read up
// front plus what earlier units staged, so a pending booked by one unit can
// be posted by the next, a pending resolves once even within a batch, and a
// transfer id repeated in the batch is a retry or a conflict as it would be
// across batches. Apply's first statement carries the unit's savepoint.
func TestBatchSeesItsOwnTransfers(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t, WithBatch(64, time.Millisecond))
	mustScratch(t, pool)
	ctx := context.Background()
	if err := l.Replenish(ctx, "LS-001", 1000, vnd, uuid.New()); err != nil {
		t.Fatal(err)
	}
	w := uuid.New()
	hold := HoldTransfer(w, "MB", 700, vnd)
	errApply := errors.New("apply refused")
	type unitCase struct {
		name   string
		unit   Unit
		marker uuid.UUID // a scratch row the unit's Apply writes
		want   string    // error code; "" success; "apply" errApply
	}
	mk := func(name string, ts []Transfer, want string) unitCase {
		id := uuid.New()
		return unitCase{name: name, unit: Unit{Apply: scratchApply(id), Transfers: ts}, marker: id, want: want}
	}
	otherHold := hold
	otherHold.Amount = 701
	cases := []unitCase{
		mk("hold", []Transfer{hold}, ""),
		mk("post the hold booked in this batch", PayoutTransfers(w, "MB", "LS-001", 700, 0, vnd), ""),
		mk("void the hold posted in this batch", []Transfer{VoidTransfer(w, vnd)}, softatm.EConflict),
		mk("the hold again: a retry", []Transfer{hold}, ""),
		mk("the hold's id with another amount", []Transfer{otherHold}, softatm.EConflict),
		mk("an unknown account", []Transfer{single(uuid.New(), AccountInFlight, TillCode("NOPE"), 1)}, softatm.ENotFound),
		mk("the till is short now", []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), 301)}, softatm.ETillShort),
		{name: "Apply refuses before any SQL", unit: Unit{
			Apply:     func(context.Context, pgx.Tx, time.Time) error { return errApply },
			Transfers: []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), 1)},
		}, want: "apply"},
		mk("no Apply problems after the refusals", []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), 300)}, ""),
	}
	// An Apply whose first statement is a query, not an Exec.
	qid := uuid.New()
	cases = append(cases, unitCase{name: "Apply starts with a query", marker: qid, unit: Unit{
		Apply: func(ctx context.Context, tx pgx.Tx, d time.Time) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM scratch`).Scan(&n); err != nil {
				return err
			}
			return scratchApply(qid)(ctx, tx, d)
		},
		Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 5)},
	}})

	units := make([]Unit, len(cases))
	for i, c := range cases {
		units[i] = c.unit
	}
	errs := oneBatch(ctx, l, units)
	for i, c := range cases {
		err := errs[i]
		switch c.want {
		case "":
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		case "apply":
			if err != errApply {
				t.Errorf("%s: %v, want the Apply error", c.name, err)
			}
		default:
			if got := softatm.ErrorCode(err); got != c.want {
				t.Errorf("%s: error %v, want code %s", c.name, err, c.want)
			}
		}
		if c.marker != uuid.Nil {
			want := 1
			if c.want != "" {
				want = 0
			}
			if got := scratchCount(t, pool, c.marker); got != want {
				t.Errorf("%s: %d scratch rows, want %d", c.name, got, want)
			}
		}
	}
	if a := mustAccount(t, l, TillCode("LS-001")); a.DebitsPosted != 1000 || a.CreditsPosted != 1000 {
		t.Errorf("till: %+v", a)
	}
	if a := mustAccount(t, l, AccountInFlight); a.DebitsPosted != 1000 || a.CreditsPosted != 700 || a.CreditsPending != 0 {
		t.Errorf("in-flight: %+v", a)
	}
	if a := mustAccount(t, l, ReceivableCode("MB")); a.DebitsPosted != 700 || a.DebitsPending != 0 || a.CreditsPosted != 5 {
		t.Errorf("receivable: %+v", a)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM transfers WHERE withdrawal_id = $1`, w).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 { // hold, post, payout
		t.Errorf("%d transfers of the withdrawal, want 3", n)
	}
	mustCheck(t, pool)
}

// TestBatchRetriesATransferBookedConcurrently: another transaction books a
// transfer id while a batch that holds the same id is running. The batch
// writes its transfers at the end, so it meets the other's row there; it
// re-runs and then sees a retry of a booked transfer, a no-op.
func TestBatchRetriesATransferBookedConcurrently(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t, WithBatch(8, time.Millisecond))
	ctx := context.Background()
	tr := single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 40)
	debit, credit := mustAccount(t, l, AccountSettlement), mustAccount(t, l, ReceivableCode("MB"))

	other, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	// The other writer books the row (its balances do not matter here).
	if _, err := other.Exec(ctx, `INSERT INTO transfers
		(id, debit_account_id, credit_account_id, amount, currency, kind, business_date)
		VALUES ($1, $2, $3, 40, 'VND', 'single', '2026-01-02')`, tr.ID, debit.ID, credit.ID); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := l.Commit(ctx, Unit{Apply: func(context.Context, pgx.Tx, time.Time) error { return nil },
			Transfers: []Transfer{tr}})
		done <- err
	}()
	<-started
	time.Sleep(300 * time.Millisecond) // the batch now waits on the other's row
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("batch: %v, want the retry to find the booked transfer", err)
	}
	if a := mustAccount(t, l, AccountSettlement); a.DebitsPosted != 0 {
		t.Fatalf("the batch booked the transfer again: %+v", a)
	}
}

// TestBatchStatementFailingToPrepare: a unit's statement, pipelined with
// its savepoint (Apply) or with the batch's end (Stmt), fails before
// anything of the pipeline ran (pgx prepares it first). The batch is re-run
// without that unit; the others commit and the unit gets its own error.
func TestBatchStatementFailingToPrepare(t *testing.T) {
	t.Parallel()
	const bad = `INSERT INTO no_such_table_yet VALUES ($1)`
	for _, tc := range []struct {
		name string
		unit Unit
	}{
		{"Apply", Unit{Apply: func(ctx context.Context, tx pgx.Tx, _ time.Time) error {
			_, err := tx.Exec(ctx, bad, 1)
			return err
		}}},
		{"Stmt", Unit{Stmt: &Stmt{SQL: bad, Args: []any{1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, pool := mustLedger(t, WithBatch(8, time.Millisecond))
			mustScratch(t, pool)
			ctx := context.Background()
			l.markGoodSQL(bad) // as if it had run before, on another connection
			before, after := uuid.New(), uuid.New()
			badUnit := tc.unit
			badUnit.Transfers = []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 100)}
			units := []Unit{
				{Apply: scratchApply(before), Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 3)}},
				badUnit,
				{Apply: scratchApply(after), Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 4)}},
			}
			for i, err := range oneBatch(ctx, l, units) {
				if (err == nil) != (i != 1) {
					t.Errorf("unit %d: error %v", i, err)
				}
			}
			if scratchCount(t, pool, before) != 1 || scratchCount(t, pool, after) != 1 {
				t.Error("the other units' Apply did not commit")
			}
			if a := mustAccount(t, l, ReceivableCode("MB")); a.CreditsPosted != 7 {
				t.Errorf("receivable %+v, want 7 credited", a)
			}
			mustCheck(t, pool)
		})
	}
}

// TestRun commits plain writes through the committer, concurrently and
// mixed with transfer units: each Run commits or fails alone, and a failing
// one (here a duplicate key after a first insert) leaves no trace.
func TestRun(t *testing.T) {
	t.Parallel()
	withAndWithoutBatching(t, 2*time.Millisecond, func(t *testing.T, l *Ledger, pool *pgxpool.Pool) {
		ctx := context.Background()
		taken := uuid.New()
		if err := l.Run(ctx, scratchTx(taken)); err != nil {
			t.Fatal(err)
		}
		const n = 40
		ids, lost := make([]uuid.UUID, n), make([]uuid.UUID, n)
		errs := make([]error, n)
		done := make(chan struct{})
		for i := range n {
			ids[i], lost[i] = uuid.New(), uuid.New()
			go func() {
				defer func() { done <- struct{}{} }()
				switch i % 4 {
				case 0: // writes a row, then breaks on a duplicate key
					errs[i] = l.Run(ctx, func(tx pgx.Tx) error {
						if err := scratchTx(lost[i])(tx); err != nil {
							return err
						}
						return scratchTx(taken)(tx)
					})
				case 1: // a transfer unit in the same batches
					_, errs[i] = l.Commit(ctx, Unit{Apply: scratchApply(ids[i]),
						Transfers: []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), 1)}})
				default:
					errs[i] = l.Run(ctx, scratchTx(ids[i]))
				}
			}()
		}
		for range n {
			<-done
		}
		for i := range n {
			if i%4 == 0 {
				if !isUniqueViolation(errs[i]) {
					t.Errorf("run %d: err = %v, want a unique violation", i, errs[i])
				}
				if got := scratchCount(t, pool, lost[i]); got != 0 {
					t.Errorf("run %d failed but left its first row", i)
				}
				continue
			}
			if errs[i] != nil {
				t.Errorf("unit %d: %v", i, errs[i])
			}
			if got := scratchCount(t, pool, ids[i]); got != 1 {
				t.Errorf("unit %d: %d rows, want 1", i, got)
			}
		}
		mustCheck(t, pool)
	})
}

func scratchTx(id uuid.UUID) func(pgx.Tx) error {
	return func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO scratch (id) VALUES ($1)`, id)
		return err
	}
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// TestStmtUnits runs one-statement units, concurrently, in batches and
// alone: the batch sends known statements with its transfers in one round
// trip. A statement that fails refuses only its unit; one that must change
// a row and changes none refuses its unit with ErrUnchanged and books none
// of its transfers; BusinessDateArg becomes the unit's business date.
func TestStmtUnits(t *testing.T) {
	t.Parallel()
	withAndWithoutBatching(t, 5*time.Millisecond, func(t *testing.T, l *Ledger, pool *pgxpool.Pool) {
		ctx := context.Background()
		insert := func(id uuid.UUID) *Stmt {
			return &Stmt{SQL: `INSERT INTO scratch (id) VALUES ($1)`, Args: []any{id}, MustChange: true}
		}
		// Teach the ledger the texts (the first run of a text is sent alone).
		taken := uuid.New()
		if _, err := l.Commit(ctx, Unit{Stmt: insert(taken)}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Commit(ctx, Unit{Stmt: &Stmt{SQL: `DELETE FROM scratch WHERE id = $1`, Args: []any{uuid.New()}}}); err != nil {
			t.Fatal(err)
		}

		type unitCase struct {
			name      string
			unit      Unit
			marker    uuid.UUID // a scratch row the unit's statement writes, if any
			transfer  uuid.UUID // the unit's transfer, if any
			wantErr   string    // "" ok; "unchanged"; "duplicate"
			wantMoved int64
		}
		var day time.Time
		mkTransfer := func() Transfer { return single(uuid.New(), AccountInFlight, TillCode("LS-001"), 1) }
		var cases []unitCase
		for i := range 12 {
			id := uuid.New()
			cases = append(cases, unitCase{name: "insert", unit: Unit{Stmt: insert(id)}, marker: id, wantMoved: 1})
			if i%3 == 0 {
				tr := mkTransfer()
				id := uuid.New()
				cases = append(cases, unitCase{name: "insert with a transfer", unit: Unit{Stmt: insert(id), Transfers: []Transfer{tr}},
					marker: id, transfer: tr.ID, wantMoved: 1})
			}
		}
		tr := mkTransfer()
		cases = append(cases,
			unitCase{name: "a duplicate key", unit: Unit{Stmt: insert(taken)}, wantErr: "duplicate"},
			unitCase{name: "nothing to delete", unit: Unit{Stmt: &Stmt{SQL: `DELETE FROM scratch WHERE id = $1`, Args: []any{uuid.New()}, MustChange: true}},
				wantErr: "unchanged"},
			unitCase{name: "nothing to delete, with a transfer", unit: Unit{Stmt: &Stmt{SQL: `DELETE FROM scratch WHERE id = $1`, Args: []any{uuid.New()}, MustChange: true},
				Transfers: []Transfer{tr}}, transfer: tr.ID, wantErr: "unchanged"},
			unitCase{name: "a short till, before a statement that changes nothing", unit: Unit{Stmt: &Stmt{SQL: `DELETE FROM scratch WHERE id = $1`, Args: []any{uuid.New()}, MustChange: true},
				Transfers: []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), 5000)}}, wantErr: "till"},
			unitCase{name: "the business date", unit: Unit{Stmt: &Stmt{SQL: `SELECT $1::date`, Args: []any{BusinessDateArg},
				Row: func(r pgx.Row) error { return r.Scan(&day) }}}, wantMoved: 1},
		)
		results := make([]Result, len(cases))
		errs := make([]error, len(cases))
		done := make(chan int)
		for i := range cases {
			go func() {
				results[i], errs[i] = l.Commit(ctx, cases[i].unit)
				done <- i
			}()
		}
		for range cases {
			<-done
		}
		for i, c := range cases {
			switch c.wantErr {
			case "":
				if errs[i] != nil || results[i].Changed != c.wantMoved {
					t.Errorf("%s: changed %d, err %v; want %d, nil", c.name, results[i].Changed, errs[i], c.wantMoved)
				}
			case "unchanged":
				if !errors.Is(errs[i], ErrUnchanged) {
					t.Errorf("%s: err %v, want ErrUnchanged", c.name, errs[i])
				}
			case "till":
				if softatm.ErrorCode(errs[i]) != softatm.ETillShort {
					t.Errorf("%s: err %v, want the till's refusal (transfers are checked first)", c.name, errs[i])
				}
			case "duplicate":
				if !isUniqueViolation(errs[i]) {
					t.Errorf("%s: err %v, want a unique violation", c.name, errs[i])
				}
			}
			if c.marker != uuid.Nil {
				if got, want := scratchCount(t, pool, c.marker), map[bool]int{true: 1, false: 0}[c.wantErr == ""]; got != want {
					t.Errorf("%s: %d scratch rows, want %d", c.name, got, want)
				}
			}
			if c.transfer != uuid.Nil {
				var n int
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM transfers WHERE id = $1`, c.transfer).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int{true: 1, false: 0}[c.wantErr == ""]; n != want {
					t.Errorf("%s: %d transfers booked, want %d", c.name, n, want)
				}
			}
			if c.name == "the business date" && (day.IsZero() || !day.Equal(results[i].BusinessDate)) {
				t.Errorf("business date: statement saw %v, unit reports %v", day, results[i].BusinessDate)
			}
		}
		mustCheck(t, pool)
	})
}

// TestCommitReportsTheOutcome: a caller that gives up is told what
// happened. Given up before its batch started, the unit is dropped and
// Commit says so; given up while its batch runs, Commit waits for the batch
// and reports that the unit committed.
func TestCommitReportsTheOutcome(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t, WithBatch(64, 300*time.Millisecond))
	mustScratch(t, pool)

	// Before: the batch waits 300 ms for company; the caller leaves at 50.
	dropped := uuid.New()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.Commit(ctx, Unit{Apply: scratchApply(dropped)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unit dropped before its batch: err %v, want the deadline", err)
	}

	// During: the batch starts at 300 ms and the unit's statement takes
	// 800 ms; the caller leaves at 500, while it runs.
	kept := uuid.New()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	_, err := l.Commit(ctx2, Unit{Apply: func(ctx context.Context, tx pgx.Tx, d time.Time) error {
		if _, err := tx.Exec(ctx, `SELECT pg_sleep(0.8)`); err != nil {
			return err
		}
		return scratchApply(kept)(ctx, tx, d)
	}})
	if err != nil || ctx2.Err() == nil {
		t.Fatalf("unit whose caller left mid-batch: err %v (caller's context %v), want it committed", err, ctx2.Err())
	}
	if scratchCount(t, pool, dropped) != 0 || scratchCount(t, pool, kept) != 1 {
		t.Fatalf("dropped unit applied %d times, kept unit %d; want 0 and 1",
			scratchCount(t, pool, dropped), scratchCount(t, pool, kept))
	}
}

// withAndWithoutBatching runs fn as two parallel subtests: on a ledger that
// commits each unit alone and on one that batches (up to 64 units, waiting
// at most wait), each with a scratch table and cash in LS-001's till.
func withAndWithoutBatching(t *testing.T, wait time.Duration, fn func(t *testing.T, l *Ledger, pool *pgxpool.Pool)) {
	t.Helper()
	for _, tc := range []struct {
		name  string
		units int
	}{{"batching off", 1}, {"batching on", 64}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, pool := mustLedger(t, WithBatch(tc.units, wait))
			mustScratch(t, pool)
			if err := l.Replenish(context.Background(), "LS-001", 1000, vnd, uuid.New()); err != nil {
				t.Fatal(err)
			}
			fn(t, l, pool)
		})
	}
}
