package ledger

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	softatm "github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger/schema"
	"github.com/softatm/softatm/ledger/schema/schematest"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

const vnd = "VND"

var ict = time.FixedZone("ICT", 7*3600)

// mustPool returns a pool on a database of the test's own with the
// ledger's tables only: the ledger reads and writes no other.
func mustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return schematest.MustPool(tb, schema.Ledger)
}

// mustLedger returns a ledger on a fresh database with the usual accounts:
// bank MB's receivable, in-flight, fees, settlement, and till LS-001.
func mustLedger(tb testing.TB, opts ...Option) (*Ledger, *pgxpool.Pool) {
	tb.Helper()
	pool := mustPool(tb)
	l := New(pool, opts...)
	tb.Cleanup(l.Close)
	ctx := context.Background()
	for _, a := range []struct {
		code  string
		flags Flags
	}{
		{ReceivableCode("MB"), 0}, {ReceivableCode("VCB"), 0}, {AccountInFlight, 0}, {AccountFees, 0},
		{AccountSettlement, 0}, {TillCode("LS-001"), FlagCreditsMustNotExceedDebits},
	} {
		if err := l.EnsureAccount(ctx, a.code, vnd, a.flags); err != nil {
			tb.Fatal(err)
		}
	}
	return l, pool
}

func mustAccount(tb testing.TB, l *Ledger, code string) Account {
	tb.Helper()
	a, err := l.Account(context.Background(), code)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := softatm.ErrorCode(err); got != code {
		tb.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func mustCheck(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	res, err := Check(context.Background(), pool)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range res {
		if !r.OK {
			tb.Errorf("check %s failed: %s", r.Name, r.Detail)
		}
	}
}

func single(id uuid.UUID, debit, credit string, amount int64) Transfer {
	return Transfer{ID: id, Debit: debit, Credit: credit, Amount: amount, Currency: vnd, Kind: KindSingle}
}

func TestEnsureAccountIdempotent(t *testing.T) {
	t.Parallel()
	l, _ := mustLedger(t)
	ctx := context.Background()
	if err := l.EnsureAccount(ctx, TillCode("LS-001"), vnd, FlagCreditsMustNotExceedDebits); err != nil {
		t.Fatal(err)
	}
	wantCode(t, l.EnsureAccount(ctx, TillCode("LS-001"), vnd, 0), softatm.EConflict)
	_, err := l.Account(ctx, "nope")
	wantCode(t, err, softatm.ENotFound)
}

func TestTransferRetryIsNoOp(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	tr := single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 1000)
	for range 3 {
		if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{tr}}); err != nil {
			t.Fatal(err)
		}
	}
	if a := mustAccount(t, l, AccountSettlement); a.DebitsPosted != 1000 {
		t.Fatalf("debits posted %d, want 1000 (booked once)", a.DebitsPosted)
	}

	// The same id with any other field is a conflict, and changes nothing.
	for _, mod := range []func(*Transfer){
		func(x *Transfer) { x.Amount = 999 },
		func(x *Transfer) { x.Credit = ReceivableCode("VCB") },
		func(x *Transfer) { x.Kind = KindPending },
		func(x *Transfer) { x.WithdrawalID = uuid.New() },
	} {
		other := tr
		mod(&other)
		_, err := l.Commit(ctx, Unit{Transfers: []Transfer{other}})
		wantCode(t, err, softatm.EConflict)
	}
	if a := mustAccount(t, l, AccountSettlement); a.DebitsPosted != 1000 {
		t.Fatalf("debits posted %d after conflicts, want 1000", a.DebitsPosted)
	}
	mustCheck(t, pool)
}

func TestPendingResolvesOnce(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	w := uuid.New()
	hold := HoldTransfer(w, "MB", 500_000, vnd)
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{hold}}); err != nil {
		t.Fatal(err)
	}
	if a := mustAccount(t, l, ReceivableCode("MB")); a.DebitsPending != 500_000 || a.DebitsPosted != 0 {
		t.Fatalf("after hold: %+v", a)
	}

	tooMuch := Transfer{ID: uuid.New(), Amount: 500_001, Kind: KindPostPending, PendingID: hold.ID}
	_, err := l.Commit(ctx, Unit{Transfers: []Transfer{tooMuch}})
	wantCode(t, err, softatm.EInvalidAmount)

	post := Transfer{ID: uuid.New(), Kind: KindPostPending, PendingID: hold.ID, WithdrawalID: w}
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{post}}); err != nil {
		t.Fatal(err)
	}
	// The same post again is a retry: fine, and nothing moves.
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{post}}); err != nil {
		t.Fatalf("retry of post: %v", err)
	}
	a := mustAccount(t, l, ReceivableCode("MB"))
	if a.DebitsPending != 0 || a.DebitsPosted != 500_000 {
		t.Fatalf("after post: %+v", a)
	}

	// A second post or a void of the same pending is refused.
	_, err = l.Commit(ctx, Unit{Transfers: []Transfer{{ID: uuid.New(), Kind: KindPostPending, PendingID: hold.ID}}})
	wantCode(t, err, softatm.EConflict)
	_, err = l.Commit(ctx, Unit{Transfers: []Transfer{{ID: uuid.New(), Kind: KindVoidPending, PendingID: hold.ID}}})
	wantCode(t, err, softatm.EConflict)
	_, err = l.Commit(ctx, Unit{Transfers: []Transfer{{ID: uuid.New(), Kind: KindVoidPending, PendingID: uuid.New()}}})
	wantCode(t, err, softatm.ENotFound)

	// A partial post releases the rest; a void releases all.
	h2 := Transfer{ID: uuid.New(), Debit: ReceivableCode("VCB"), Credit: AccountInFlight, Amount: 100, Currency: vnd, Kind: KindPending}
	h3 := Transfer{ID: uuid.New(), Debit: ReceivableCode("VCB"), Credit: AccountInFlight, Amount: 70, Currency: vnd, Kind: KindPending}
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{h2, h3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{
		{ID: uuid.New(), Amount: 60, Kind: KindPostPending, PendingID: h2.ID},
		{ID: uuid.New(), Kind: KindVoidPending, PendingID: h3.ID},
	}}); err != nil {
		t.Fatal(err)
	}
	if a := mustAccount(t, l, ReceivableCode("VCB")); a.DebitsPending != 0 || a.DebitsPosted != 60 {
		t.Fatalf("after partial post and void: %+v", a)
	}
	if a := mustAccount(t, l, AccountInFlight); a.CreditsPending != 0 || a.CreditsPosted != 500_060 {
		t.Fatalf("in flight after partial post and void: %+v", a)
	}
	mustCheck(t, pool)
}

// scratch is a table of the test's own that Apply writes to, to show that a
// refused unit leaves no trace.
func mustScratch(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	if _, err := pool.Exec(context.Background(), `CREATE TABLE scratch (id UUID PRIMARY KEY)`); err != nil {
		tb.Fatal(err)
	}
}

func scratchApply(id uuid.UUID) func(context.Context, pgx.Tx, time.Time) error {
	return func(ctx context.Context, tx pgx.Tx, _ time.Time) error {
		_, err := tx.Exec(ctx, `INSERT INTO scratch (id) VALUES ($1)`, id)
		return err
	}
}

func scratchCount(tb testing.TB, pool *pgxpool.Pool, id uuid.UUID) int {
	tb.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM scratch WHERE id = $1`, id).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestTillRefusesPayoutBeyondCash(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	mustScratch(t, pool)
	ctx := context.Background()
	if err := l.Replenish(ctx, "LS-001", 1_000_000, vnd, uuid.New()); err != nil {
		t.Fatal(err)
	}
	w := uuid.New()
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{HoldTransfer(w, "MB", 1_500_000, vnd)}}); err != nil {
		t.Fatal(err)
	}
	marker := uuid.New()
	_, err := l.Commit(ctx, Unit{Apply: scratchApply(marker), Transfers: PayoutTransfers(w, "MB", "LS-001", 1_500_000, 0, vnd)})
	wantCode(t, err, softatm.ETillShort)
	if scratchCount(t, pool, marker) != 0 {
		t.Fatal("the refused unit's Apply was not rolled back")
	}
	// Nothing of the unit stayed: the hold is still pending.
	if a := mustAccount(t, l, ReceivableCode("MB")); a.DebitsPending != 1_500_000 || a.DebitsPosted != 0 {
		t.Fatalf("receivable after refusal: %+v", a)
	}
	if a := mustAccount(t, l, TillCode("LS-001")); a.CreditsPosted != 0 || a.DebitsPosted != 1_000_000 {
		t.Fatalf("till after refusal: %+v", a)
	}

	// Exactly the cash in the till can go out.
	w2 := uuid.New()
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{HoldTransfer(w2, "MB", 1_000_000, vnd)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, Unit{Apply: scratchApply(marker), Transfers: PayoutTransfers(w2, "MB", "LS-001", 1_000_000, 0, vnd)}); err != nil {
		t.Fatal(err)
	}
	if scratchCount(t, pool, marker) != 1 {
		t.Fatal("Apply of the committed unit is missing")
	}
	mustCheck(t, pool)
}

func TestUnitAllOrNothing(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	good := single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 10)
	bad := single(uuid.New(), AccountSettlement, "bank:NOPE:receivable", 10)
	_, err := l.Commit(ctx, Unit{Transfers: []Transfer{good, bad}})
	wantCode(t, err, softatm.ENotFound)
	if a := mustAccount(t, l, AccountSettlement); a.DebitsPosted != 0 {
		t.Fatalf("first transfer of a refused unit was booked: %+v", a)
	}
	// An Apply error is returned unchanged and nothing is booked.
	errMine := errors.New("state moved on")
	_, err = l.Commit(ctx, Unit{
		Apply:     func(context.Context, pgx.Tx, time.Time) error { return errMine },
		Transfers: []Transfer{good},
	})
	if err != errMine {
		t.Fatalf("Commit returned %v, want the Apply error unchanged", err)
	}
	if a := mustAccount(t, l, AccountSettlement); a.DebitsPosted != 0 {
		t.Fatalf("transfer of a unit whose Apply failed was booked: %+v", a)
	}
	// Bad input is refused before touching the database.
	for _, tr := range []Transfer{
		{ID: uuid.New(), Debit: "a", Credit: "b", Amount: 0, Currency: vnd, Kind: KindSingle},
		{ID: uuid.New(), Debit: "a", Credit: "a", Amount: 1, Currency: vnd, Kind: KindSingle},
		{ID: uuid.Nil, Debit: "a", Credit: "b", Amount: 1, Currency: vnd, Kind: KindSingle},
		{ID: uuid.New(), Debit: "a", Credit: "b", Amount: 1, Currency: vnd, Kind: "loan"},
		{ID: uuid.New(), Kind: KindPostPending},
	} {
		if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{tr}}); err == nil {
			t.Errorf("transfer %+v accepted", tr)
		}
	}
	_, err = l.Commit(ctx, Unit{Transfers: []Transfer{{ID: uuid.New(), Debit: AccountSettlement, Credit: AccountFees, Amount: 1, Currency: "USD", Kind: KindSingle}}})
	wantCode(t, err, softatm.EInvalid)
	mustCheck(t, pool)
}

// TestBatchRefusesOnlyTheFailingUnit runs one batch directly, so that the
// units are known to share one transaction.
func TestBatchRefusesOnlyTheFailingUnit(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t, WithBatch(16, time.Millisecond))
	mustScratch(t, pool)
	ctx := context.Background()
	if err := l.Replenish(ctx, "LS-001", 300, vnd, uuid.New()); err != nil {
		t.Fatal(err)
	}
	errApply := errors.New("apply refused")
	type unitCase struct {
		unit    Unit
		marker  uuid.UUID
		wantErr string // error code, "" for success, "apply" for errApply
	}
	var cases []unitCase
	add := func(amount int64, apply func(context.Context, pgx.Tx, time.Time) error, marker uuid.UUID, want string) {
		cases = append(cases, unitCase{
			unit: Unit{Apply: apply, Transfers: []Transfer{
				single(uuid.New(), AccountInFlight, TillCode("LS-001"), amount),
			}},
			marker: marker, wantErr: want,
		})
	}
	m := func() uuid.UUID { return uuid.New() }
	for range 3 {
		id := m()
		add(100, scratchApply(id), id, "") // 300 in the till: these three fit
	}
	id := m()
	add(1, scratchApply(id), id, softatm.ETillShort) // the till is empty now
	id = m()
	add(5, func(ctx context.Context, tx pgx.Tx, d time.Time) error {
		if err := scratchApply(id)(ctx, tx, d); err != nil {
			return err
		}
		return errApply
	}, id, "apply")
	// A unit after the refusals still commits (a transfer with no limit).
	id = m()
	cases = append(cases, unitCase{unit: Unit{Apply: scratchApply(id), Transfers: []Transfer{
		single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 7)}}, marker: id})
	// A unit whose Apply breaks the transaction with an SQL error is also
	// refused alone (on PostgreSQL ROLLBACK TO SAVEPOINT recovers it).
	cases = append(cases, unitCase{unit: Unit{Apply: func(ctx context.Context, tx pgx.Tx, _ time.Time) error {
		_, err := tx.Exec(ctx, `INSERT INTO no_such_table VALUES (1)`)
		return err
	}}, wantErr: softatm.EInternal})

	units := make([]Unit, len(cases))
	for i, c := range cases {
		units[i] = c.unit
	}
	errs := oneBatch(ctx, l, units)
	for i, c := range cases {
		err := errs[i]
		switch c.wantErr {
		case "":
			if err != nil {
				t.Errorf("unit %d: %v", i, err)
			}
		case "apply":
			if err != errApply {
				t.Errorf("unit %d: %v, want the Apply error", i, err)
			}
		default:
			wantCode(t, err, c.wantErr)
		}
		if c.marker != uuid.Nil {
			want := 1
			if c.wantErr != "" {
				want = 0
			}
			if got := scratchCount(t, pool, c.marker); got != want {
				t.Errorf("unit %d: %d scratch rows, want %d", i, got, want)
			}
		}
	}
	if a := mustAccount(t, l, TillCode("LS-001")); a.DebitsPosted != 300 || a.CreditsPosted != 300 {
		t.Fatalf("till after batch: %+v", a)
	}
	if a := mustAccount(t, l, AccountSettlement); a.DebitsPosted != 7 || a.CreditsPosted != 300 {
		t.Fatalf("settlement after batch: %+v", a)
	}
	mustCheck(t, pool)
}

// TestBatchedCommitsConcurrently drives Commit through the committer from
// many goroutines, on one hot till, and checks the totals.
func TestBatchedCommitsConcurrently(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t, WithBatch(32, 2*time.Millisecond))
	ctx := context.Background()
	const cash, n, amount = 1000, 40, 50 // 20 payouts fit, 20 are refused
	if err := l.Replenish(ctx, "LS-001", cash, vnd, uuid.New()); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := l.Commit(ctx, Unit{Transfers: []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), amount)}})
			errs <- err
		}()
	}
	ok, short := 0, 0
	for range n {
		err := <-errs
		switch softatm.ErrorCode(err) {
		case "":
			ok++
		case softatm.ETillShort:
			short++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != cash/amount || short != n-cash/amount {
		t.Fatalf("%d paid, %d refused; want %d and %d", ok, short, cash/amount, n-cash/amount)
	}
	if a := mustAccount(t, l, TillCode("LS-001")); a.CreditsPosted != cash {
		t.Fatalf("till %+v", a)
	}
	mustCheck(t, pool)
	l.Close()
	_, err := l.Commit(ctx, Unit{Transfers: []Transfer{single(uuid.New(), AccountInFlight, TillCode("LS-001"), 1)}})
	wantCode(t, err, softatm.EUnavailable)
}

func TestBusinessDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 11, 0, 0, 5, 0, ict) // past 10 March's last cut-off
	l, pool := mustLedger(t, WithClock(func() time.Time { return now }))
	ctx := context.Background()
	d := func(y int, m time.Month, day int) time.Time { return civilDate(y, m, day) }
	for _, c := range []struct {
		at   time.Time
		want time.Time
	}{
		{time.Date(2025, 3, 10, 0, 0, 0, 0, ict), d(2025, 3, 10)},
		{time.Date(2025, 3, 10, 23, 59, 59, 999_000_000, ict), d(2025, 3, 10)}, // the cut-off's last second
		{time.Date(2025, 3, 11, 0, 0, 0, 0, ict), d(2025, 3, 11)},
		{time.Date(2025, 3, 10, 16, 59, 59, 0, time.UTC), d(2025, 3, 10)}, // 23:59:59 ICT
		{time.Date(2025, 3, 10, 17, 0, 0, 0, time.UTC), d(2025, 3, 11)},
		{time.Date(2025, 12, 31, 23, 30, 0, 0, ict), d(2025, 12, 31)},
	} {
		got, err := l.BusinessDate(ctx, c.at)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("BusinessDate(%v) = %v, %v; want %v", c.at, got, err, c.want)
		}
	}

	res, err := l.Commit(ctx, Unit{At: time.Date(2025, 3, 10, 12, 0, 0, 0, ict),
		Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 5)}})
	if err != nil || !res.BusinessDate.Equal(d(2025, 3, 10)) {
		t.Fatalf("commit: %v %v", res, err)
	}
	if err := l.CloseDay(ctx, DayClose{Date: d(2025, 3, 10), By: "finance-1"}); err != nil {
		t.Fatal(err)
	}
	if err := l.CloseDay(ctx, DayClose{Date: d(2025, 3, 10), By: "finance-2"}); err != nil {
		t.Fatalf("second close: %v", err)
	}
	wantCode(t, l.CloseDay(ctx, DayClose{Date: d(2025, 3, 11)}), softatm.EInvalid)
	// A late event of a closed day lands in the next open day: the closed
	// day does not change.
	res, err = l.Commit(ctx, Unit{At: time.Date(2025, 3, 10, 12, 5, 0, 0, ict),
		Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 6)}})
	if err != nil || !res.BusinessDate.Equal(d(2025, 3, 11)) {
		t.Fatalf("late commit: %v %v", res, err)
	}
	now = time.Date(2025, 3, 12, 0, 0, 0, 0, ict)
	if err := l.CloseDay(ctx, DayClose{Date: d(2025, 3, 11), By: "finance-1"}); err != nil {
		t.Fatal(err)
	}
	got, err := l.BusinessDate(ctx, time.Date(2025, 3, 10, 23, 30, 0, 0, ict))
	if err != nil || !got.Equal(d(2025, 3, 12)) {
		t.Fatalf("after two closes: %v %v", got, err)
	}
	days, err := l.Days(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 2 || !days[0].Closed || days[0].ClosedBy != "finance-1" || !days[0].ClosedAt.Equal(time.Date(2025, 3, 11, 0, 0, 5, 0, ict)) ||
		days[0].TransferCount != 1 || days[0].AmountSum != 5 || days[1].TransferCount != 1 {
		t.Fatalf("days: %+v", days)
	}
	mustCheck(t, pool)
}

// TestBusinessDateFromTheBanksCutoff: a unit is dated by its bank's
// cut-off, or by the date the bank named; the ledger's default is only for
// a unit that names neither.
func TestBusinessDateFromTheBanksCutoff(t *testing.T) {
	t.Parallel()
	l, _ := mustLedger(t)
	ctx := context.Background()
	early := Cutoff{17, 0, 0} // a bank that settles at five
	for _, c := range []struct {
		name string
		u    Unit
		want time.Time
	}{
		{"default, 13:22", Unit{At: time.Date(2025, 7, 1, 13, 22, 0, 0, ict)}, civilDate(2025, 7, 1)},
		{"default, 23:59:59", Unit{At: time.Date(2025, 7, 1, 23, 59, 59, 0, ict)}, civilDate(2025, 7, 1)},
		{"17:00 bank, 17:00:00", Unit{At: time.Date(2025, 7, 1, 17, 0, 0, 0, ict), Cutoff: &early}, civilDate(2025, 7, 1)},
		{"17:00 bank, 17:00:01", Unit{At: time.Date(2025, 7, 1, 17, 0, 1, 0, ict), Cutoff: &early}, civilDate(2025, 7, 2)},
		{"bank's date wins", Unit{At: time.Date(2025, 7, 1, 10, 0, 0, 0, ict), Cutoff: &early, Date: civilDate(2025, 7, 3)}, civilDate(2025, 7, 3)},
	} {
		c.u.Transfers = []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 1)}
		res, err := l.Commit(ctx, c.u)
		if err != nil || !res.BusinessDate.Equal(c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, res.BusinessDate, err, c.want)
		}
	}
	bad := Cutoff{24, 0, 0}
	_, err := l.Commit(ctx, Unit{Cutoff: &bad, Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 1)}})
	wantCode(t, err, softatm.EInvalid)
}

// TestCloseDayGuards: a day closes only after the last bank's cut-off
// (the close at 13:20 that moved a 13:22 payout into the next day is
// refused), with open items only with a reason, which is kept; and a
// payout after the refused close stays in its day.
func TestCloseDayGuards(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 13, 20, 0, 0, ict)
	l, pool := mustLedger(t, WithClock(func() time.Time { return now }))
	ctx := context.Background()
	day := civilDate(2026, 11, 27)
	cuts := []Cutoff{{17, 0, 0}, DefaultCutoff}
	wantCode(t, l.CloseDay(ctx, DayClose{Date: day, By: "finance", Cutoffs: cuts, Reason: "closing early"}), softatm.EDayNotOver)
	res, err := l.Commit(ctx, Unit{At: time.Date(2026, 11, 27, 13, 22, 0, 0, ict), Cutoff: &cuts[0],
		Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 7)}})
	if err != nil || !res.BusinessDate.Equal(day) {
		t.Fatalf("the 13:22 payout: %v %v; want %v", res.BusinessDate, err, day)
	}
	now = time.Date(2026, 11, 27, 23, 59, 59, 500_000_000, ict) // the 17:00 bank's day is over, the other's is not
	wantCode(t, l.CloseDay(ctx, DayClose{Date: day, By: "finance", Cutoffs: cuts}), softatm.EDayNotOver)
	now = time.Date(2026, 11, 28, 0, 0, 0, 0, ict)
	open := []string{"bank MB: 1 unresolved reconciliation row(s)", "1 claim(s) in flight"}
	err = l.CloseDay(ctx, DayClose{Date: day, By: "finance", Cutoffs: cuts, Open: open, Reason: "  "})
	wantCode(t, err, softatm.EDayOpenItems)
	if !strings.Contains(softatm.ErrorMessage(err), "1 claim(s) in flight") {
		t.Fatalf("the refusal does not list what is open: %v", err)
	}
	if err := l.CloseDay(ctx, DayClose{Date: day, By: "finance", Cutoffs: cuts, Open: open, Reason: "the bank confirmed by phone"}); err != nil {
		t.Fatal(err)
	}
	days, err := l.Days(ctx)
	if err != nil || len(days) != 1 || !days[0].Closed || days[0].CloseReason != "the bank confirmed by phone" ||
		!slices.Equal(days[0].OpenAtClose, open) || days[0].TransferCount != 1 {
		t.Fatalf("days: %+v %v", days, err)
	}
	// Nothing after the close changes the day: a late posting of the day
	// lands in the next, and the day's frozen figures still hold.
	res, err = l.Commit(ctx, Unit{At: time.Date(2026, 11, 27, 16, 0, 0, 0, ict), Cutoff: &cuts[0],
		Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 8)}})
	if err != nil || !res.BusinessDate.Equal(day.AddDate(0, 0, 1)) {
		t.Fatalf("late posting: %v %v", res.BusinessDate, err)
	}
	if _, err := l.Count(ctx, "LS-001", 0, "teller", uuid.New()); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM transfers WHERE business_date = $1`, day).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the closed day holds %d transfers, %v", n, err)
	}
	mustCheck(t, pool)
}

// TestCloseDayRacesPostings closes a day while postings into it run: every
// posting must land either in the day before the close (and be counted) or
// in the next day.
func TestCloseDayRacesPostings(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, ict)
	const n = 40
	errs := make(chan error, n+1)
	for i := range n {
		go func() {
			if i == n/2 {
				errs <- l.CloseDay(ctx, DayClose{Date: at, By: "finance"})
			}
			_, err := l.Commit(ctx, Unit{At: at, Transfers: []Transfer{single(uuid.New(), AccountSettlement, ReceivableCode("MB"), 1)}})
			errs <- err
		}()
	}
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, pool) // closed_days_frozen among them
	var total int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM transfers`).Scan(&total); err != nil || total != n {
		t.Fatalf("%d transfers, %v", total, err)
	}
}

// oneBatch commits units in one batch (runBatch, as the committer would)
// and returns each unit's error.
func oneBatch(ctx context.Context, l *Ledger, units []Unit) []error {
	reqs := make([]*request, len(units))
	for i, u := range units {
		u.At = time.Now()
		reqs[i] = &request{ctx: ctx, unit: u, done: make(chan struct{})}
	}
	l.runBatch(ctx, reqs)
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		<-r.done
		errs[i] = r.err
	}
	return errs
}
