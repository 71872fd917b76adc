// Package ledger owns the double-entry ledger of the switch, modelled on
// TigerBeetle's accounts and transfers but kept in SQL (PostgreSQL or
// CockroachDB): accounts with four balance columns, append-only transfers
// (single, pending, post_pending, void_pending) whose ids are given by the
// caller so that a retry is a no-op, business days with a cut-off and a
// close, the settlement report (built from transfers alone), and the
// invariant checks on its own tables behind `softatm admin check` (the
// switch checks its withdrawals against the ledger itself). It reads and
// migrates only its own tables (ledger/schema). Sub-package recon
// reconciles bank settlement files.
//
// The write API takes a Unit: the caller's own state change (Apply) plus the
// transfers that go with it, committed atomically. With WithBatch a committer
// goroutine applies many units in one SERIALIZABLE transaction, one SAVEPOINT
// per unit, and one balance UPDATE per touched account per batch, because
// every payout touches the same hot rows (a post office's till, a bank's
// receivable) and a transaction per payout on one hot row does not scale
// under SERIALIZABLE. A batch costs few round trips (see batch): it reads
// what its transfers need up front, checks them in memory, and writes them
// and the balances in one pipeline at the end.
//
// Decisions not in the design:
//   - A post_pending transfer row carries the posted amount (<= the pending);
//     a void_pending row carries the whole pending amount.
//   - Limits: an account with FlagCreditsMustNotExceedDebits refuses a
//     transfer when credits_pending + credits_posted would exceed
//     debits_posted (as TigerBeetle). Refusal has code ETillShort.
//   - Closing a day records its transfer count and amount sum; the close
//     reads the day's transfers so that, under SERIALIZABLE, a posting racing
//     the close either lands before it (and is counted) or is re-run and
//     lands in the next open day.
//   - A payout "transfer set" for withdrawal W is one post_pending with
//     withdrawal id W plus one single transfer debiting cashout:in_flight
//     into the paying post office's till with withdrawal id W and W's
//     amount (see PayoutTransfers): the settlement report counts payouts
//     by it, and atmswitch.Check expects it of every paid withdrawal.
//   - A till closes three ways (see till.go): replenishments and
//     collections against settlement:bank_account, payouts, and the
//     teller's count, whose difference from the till's posted balance is
//     booked to po:<P>:over_short in the same unit as the count's row; a
//     till is counted once per business day (till_counts' key). The count
//     is computed from a balance read before the commit, so its unit
//     carries that balance as an Expect: a payout that lands in between
//     refuses it (ErrBalanceMoved) and Count reads again.
//   - Sub-package forecast is the pure cash forecast fed from TillHistory;
//     this package does not import it.
//
// This package imports only package softatm of this module; it must not
// import the switch, the teller or the ISO 8583 packages, and no package
// below it may depend on the switch or the teller (imports_test.go checks
// both).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	softatm "github.com/softatm/softatm"
)

// Kind is the kind of a transfer.
type Kind string

// Transfer kinds, as in TigerBeetle.
const (
	KindSingle      Kind = "single"
	KindPending     Kind = "pending"
	KindPostPending Kind = "post_pending"
	KindVoidPending Kind = "void_pending"
)

// Flags are account flags.
type Flags uint32

// FlagCreditsMustNotExceedDebits is set on tills: a till is debited when
// cash is put in (replenish) and credited when cash goes out (payout), so it
// cannot pay out cash it does not hold.
const FlagCreditsMustNotExceedDebits Flags = 1

// Well-known account codes.
const (
	AccountInFlight   = "cashout:in_flight"       // holds approved but not yet paid
	AccountFees       = "fees:income"             // fees charged to banks
	AccountSettlement = "settlement:bank_account" // the switch's own bank account
)

// ReceivableCode is the account of what bank owes the switch.
func ReceivableCode(bank string) string { return "bank:" + bank + ":receivable" }

// TillCode is the cash till of a post office.
func TillCode(postOffice string) string { return "po:" + postOffice + ":till" }

// TransferID derives a stable transfer id from a withdrawal id and a purpose
// ("hold", "post", "payout", "fee", "void"), so that a retried step reuses
// the same id and is a no-op.
func TransferID(withdrawalID uuid.UUID, purpose string) uuid.UUID {
	return uuid.NewSHA1(withdrawalID, []byte(purpose))
}

// Account is an account and its balances.
type Account struct {
	ID             uuid.UUID
	Code, Currency string
	Flags          Flags
	DebitsPending  int64
	DebitsPosted   int64
	CreditsPending int64
	CreditsPosted  int64
}

// Transfer moves Amount from the Debit account to the Credit account.
type Transfer struct {
	// ID is given by the caller: a retry with the same ID and the same
	// fields is a no-op; the same ID with other fields is an EConflict.
	ID            uuid.UUID
	Debit, Credit string // account codes; for post/void they may be empty (taken from the pending)
	Amount        int64  // for post_pending: <= the pending amount, 0 = all of it; ignored for void
	Currency      string
	Kind          Kind
	PendingID     uuid.UUID // for post_pending and void_pending
	WithdrawalID  uuid.UUID // optional
}

// Unit is one unit of work: the caller's state change and its transfers,
// committed atomically.
type Unit struct {
	// At is the event time; with Cutoff it decides the business date.
	// Zero: the clock.
	At time.Time
	// Cutoff is the cut-off of the bank the unit is about (a payout's,
	// a hold's): the business date is At's date under it, as the bank
	// dates the same event in its settlement file. Nil: the ledger's
	// default (WithCutoff).
	Cutoff *Cutoff
	// Date, if set, is the business date the bank named for the event
	// (ISO 8583 field 15): it wins over the cut-off, because the bank's
	// file is what the day is reconciled with.
	Date time.Time
	// Apply, if set, runs inside the unit's savepoint before the transfers.
	// It must only touch the database: it may run again when the batch is
	// retried. An error rolls back only this unit and Commit returns it
	// unchanged. It must not read or write the accounts and transfers
	// tables: the batch checks transfers in memory and writes them, with
	// the balances, when all its units have run.
	Apply func(ctx context.Context, tx pgx.Tx, businessDate time.Time) error
	// Stmt, instead of Apply, is a unit's work when it is one statement:
	// the batch then sends it, with the other units' statements and the
	// transfers, in one round trip at the end instead of one round trip of
	// its own. Its transfers are checked before it runs, so a refused
	// transfer (a hold already resolved) is the unit's error even where the
	// statement would have changed nothing. A statement that fails (an
	// SQL error) refuses its unit and costs the batch a re-run without it.
	Stmt *Stmt
	// Expect, if set, are balances the unit relies on: each is checked,
	// after Apply and before the transfers, against the batch's own view
	// (what the unit's earlier batch-mates staged included), and a
	// mismatch refuses the unit with ErrBalanceMoved (code EConflict).
	// A till count uses it: its over/short transfer is right only for the
	// balance it was computed from.
	Expect    []Expect
	Transfers []Transfer

	// undated: set by Run; the unit needs no business date (Apply is
	// handed the zero time), so the batch does not look one up for it.
	undated bool
}

// Result is what a committed unit reports.
type Result struct {
	BusinessDate time.Time
	Changed      int64 // rows the unit's Stmt changed (or returned, with Row)
}

// Stmt is one SQL statement: the whole of a unit's own work (see
// Unit.Stmt). It follows Apply's rules.
type Stmt struct {
	SQL  string
	Args []any // BusinessDateArg among them stands for the unit's business date
	// Row, if set, reads the one row a RETURNING statement returns; none
	// (pgx.ErrNoRows) means the statement changed nothing. Any other error
	// from Row refuses the unit.
	Row func(pgx.Row) error
	// Rows, instead of Row, reads every row a RETURNING statement returns
	// (an outbox lease, say); the statement's row count is what it
	// changed. It may run again when the batch is re-run, so it must
	// replace, not append to, what it fills. Any error from Rows refuses
	// the unit.
	Rows func(pgx.Rows) error
	// MustChange refuses the unit with ErrUnchanged, its transfers not
	// booked, when the statement changes no row.
	MustChange bool
}

// Expect is a posted balance (debits_posted - credits_posted) that Account
// must have when a unit runs (see Unit.Expect).
type Expect struct {
	Account string
	Posted  int64
}

// ErrBalanceMoved refuses a unit whose Expect did not hold: the account
// moved since the caller read it. The caller may read again and retry.
var ErrBalanceMoved = errors.New("ledger: the account's balance moved")

// ErrUnchanged refuses a unit whose Stmt had to change a row and changed
// none (the row was not in the state the statement expects).
var ErrUnchanged = errors.New("ledger: the unit's statement changed no row")

// BusinessDateArg, among a Stmt's Args, is replaced by the unit's business
// date.
var BusinessDateArg any = businessDateArg{}

type businessDateArg struct{}

// stmtArgs returns st's arguments with the business date in place.
func stmtArgs(st *Stmt, date time.Time) []any {
	args := slices.Clone(st.Args)
	for i, a := range args {
		if _, ok := a.(businessDateArg); ok {
			args[i] = date
		}
	}
	return args
}

// Default settings.
const (
	defaultCutoffZone = "Asia/Ho_Chi_Minh" // the zone of every cut-off (DefaultCutoff: 23:59:59)
	// defaultBatchUnits 1: one transaction per unit, run in the caller's
	// goroutine.
	defaultBatchUnits = 1
	// batchQueueMax bounds the units waiting for the committer; Commit
	// blocks (until its context ends) when it is full.
	batchQueueMax = 4096
	// maxTransfersPerUnit bounds one unit.
	maxTransfersPerUnit = 64
	// batchUnitsMax bounds WithBatch.
	batchUnitsMax = 1024
)

type options struct {
	cutoff     Cutoff
	loc        *time.Location
	clock      func() time.Time
	maxRetries int
	batchUnits int
	batchWait  time.Duration
	commitLock string // WithCommitLock (lease.go)
}

// Option configures a Ledger.
type Option func(*options)

// WithCutoff sets the cut-off of a unit that names none (Unit.Cutoff) and
// of BusinessDate, and the zone of every cut-off. Default DefaultCutoff
// (23:59:59) in Asia/Ho_Chi_Minh.
func WithCutoff(c Cutoff, loc *time.Location) Option {
	return func(o *options) { o.cutoff, o.loc = c, loc }
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithMaxRetries bounds the re-runs of one transaction (default 20).
func WithMaxRetries(n int) Option { return func(o *options) { o.maxRetries = n } }

// WithBatch lets a committer apply up to maxUnits units in one transaction,
// waiting at most maxWait for more units once one is waiting. Default 1, 0:
// no batching.
func WithBatch(maxUnits int, maxWait time.Duration) Option {
	return func(o *options) { o.batchUnits, o.batchWait = maxUnits, maxWait }
}

// LazyCommit marks the units committed with ctx as ones that may be lost
// in a crash of the database: a batch whose units are all lazy commits
// with synchronous_commit = off, so its COMMIT answers before its WAL is
// flushed to disk or reaches a synchronous standby. Its writes are visible
// to every session at once; a crash or failover of the database within
// PostgreSQL's flush interval (up to three wal_writer_delay, 0.6 s by
// default) may lose them. WAL is one sequence and any durable commit
// flushes everything before it, so a lazy write is only ever lost together
// with every write committed after it, lazy or not.
//
// A batch with one durable unit among lazy ones is durable. Only for
// writes a caller can do without after a crash: in serve, the idempotency
// records of the requests whose handlers answer a retry from the business
// row (switch/idem, "Durability"); never money.
func LazyCommit(ctx context.Context) context.Context { return context.WithValue(ctx, lazyKey{}, true) }

type lazyKey struct{}

// Background marks the units committed with ctx as no caller's: the
// outbox's, the sweeper's, the callbacks' and the purge's. It changes
// nothing in how they commit; they are counted apart (Stats), so that the
// durable commits a caller waits for can be told from the workers'.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

type backgroundKey struct{}

func isBackground(ctx context.Context) bool { v, _ := ctx.Value(backgroundKey{}).(bool); return v }

func isLazy(ctx context.Context) bool { v, _ := ctx.Value(lazyKey{}).(bool); return v }

// Ledger is the double-entry ledger. It is safe for concurrent use.
type Ledger struct {
	pool *pgxpool.Pool
	opt  options

	// mu guards closed and the closing of queue: Commit enqueues under a
	// read lock, so no unit can be sent after Close closed the queue.
	mu     sync.RWMutex
	closed bool
	queue  chan *request
	done   chan struct{}

	// good holds SQL texts that Apply functions ran without error, so a
	// unit's savepoint may be pipelined with them (see spTx.Exec).
	good sync.Map
	// goodCount bounds good to goodSQLMax entries.
	goodCount atomic.Int64

	// For Stats.
	batches, units, busyNanos atomic.Int64
	lazyBatches, lazyUnits    atomic.Int64
	backgroundUnits           atomic.Int64
	directUnits               atomic.Int64 // Direct statements committed

	roundTrips atomic.Int64
	// The same, per batch-size bucket (SizeBuckets), so that the time per
	// unit can be compared between small and large batches.
	bySize [len(SizeBuckets)]struct{ batches, units, busyNanos atomic.Int64 }

	// lock is the committer's hold on the commit lock (lease.go).
	lock commitLock
}

// SizeBuckets are the batch sizes the committer's counters are split by:
// bucket i holds batches of at most SizeBuckets[i] units (and more than
// SizeBuckets[i-1]); the last, math.MaxInt, the rest.
var SizeBuckets = [...]int{1, 4, 8, 16, 32, 64, math.MaxInt}

// SizeBucketName names bucket i for a metric label: "1", "2-4", ..., "65+".
func SizeBucketName(i int) string {
	lo := 1
	if i > 0 {
		lo = SizeBuckets[i-1] + 1
	}
	switch hi := SizeBuckets[i]; {
	case hi == math.MaxInt:
		return fmt.Sprintf("%d+", lo)
	case hi == lo:
		return fmt.Sprint(lo)
	default:
		return fmt.Sprintf("%d-%d", lo, hi)
	}
}

// sizeBucket returns the bucket of a batch of n units.
func sizeBucket(n int) int {
	for i, hi := range SizeBuckets {
		if n <= hi {
			return i
		}
	}
	return len(SizeBuckets) - 1
}

// Stats are the committer's counters since New, for metrics: units per
// batch shows how much commits are shared, and the rate of Busy (seconds
// per second) how close the committer is to saturation (1).
type Stats struct {
	Batches int64         // batch transactions committed or failed (a re-run is not a new batch)
	Units   int64         // units those batches carried
	Busy    time.Duration // time spent running batches, re-runs included
	// RoundTrips counts the batches' round trips to the database (BEGIN
	// and COMMIT included, re-runs too): with batching on, what a batch
	// costs besides the work itself.
	RoundTrips int64
	// LazyBatches and LazyUnits are the batches committed without waiting
	// for their WAL flush (LazyCommit) and their units.
	LazyBatches, LazyUnits int64
	// BackgroundUnits are the durable units committed for no caller
	// (Background): Units - LazyUnits - BackgroundUnits are the durable
	// commits callers waited for.
	BackgroundUnits int64
	// DirectUnits are the statements committed by Direct, outside the
	// batches (each a durable commit its caller waited for).
	DirectUnits int64
	// BySize splits the three by batch size (SizeBuckets): Busy/Units of a
	// bucket is the committer's time per unit at that size.
	BySize [len(SizeBuckets)]SizeStats
}

// SizeStats are a batch-size bucket's share of Stats.
type SizeStats struct {
	Batches, Units int64
	Busy           time.Duration
}

// Stats returns the committer's counters.
func (l *Ledger) Stats() Stats {
	st := Stats{Batches: l.batches.Load(), Units: l.units.Load(), Busy: time.Duration(l.busyNanos.Load()), RoundTrips: l.roundTrips.Load(),
		LazyBatches: l.lazyBatches.Load(), LazyUnits: l.lazyUnits.Load(), BackgroundUnits: l.backgroundUnits.Load(),
		DirectUnits: l.directUnits.Load()}
	for i := range l.bySize {
		b := &l.bySize[i]
		st.BySize[i] = SizeStats{Batches: b.batches.Load(), Units: b.units.Load(), Busy: time.Duration(b.busyNanos.Load())}
	}
	return st
}

// goodSQLMax bounds the SQL texts remembered as good; past it, new texts
// are simply sent after their savepoint (one round trip more).
const goodSQLMax = 1024

func (l *Ledger) goodSQL(sql string) bool {
	_, ok := l.good.Load(sql)
	return ok
}

// forgetSQL drops sql from the texts known to be good.
func (l *Ledger) forgetSQL(sql string) {
	if _, ok := l.good.LoadAndDelete(sql); ok {
		l.goodCount.Add(-1)
	}
}

func (l *Ledger) markGoodSQL(sql string) {
	if l.goodSQL(sql) || l.goodCount.Load() >= goodSQLMax {
		return
	}
	if _, loaded := l.good.LoadOrStore(sql, struct{}{}); !loaded {
		l.goodCount.Add(1)
	}
}

// New returns a ledger on pool. Close it to stop the batch committer.
func New(pool *pgxpool.Pool, opts ...Option) *Ledger {
	o := options{
		cutoff: DefaultCutoff,
		clock:  time.Now, maxRetries: DefaultMaxRetries, batchUnits: defaultBatchUnits,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.loc == nil {
		loc, err := time.LoadLocation(defaultCutoffZone)
		if err != nil {
			// No tzdata: Vietnam has had no DST since 1975, a fixed zone is exact.
			loc = time.FixedZone("ICT", 7*3600)
		}
		o.loc = loc
	}
	o.batchUnits = max(1, min(o.batchUnits, batchUnitsMax))
	o.batchWait = max(0, o.batchWait)
	l := &Ledger{pool: pool, opt: o, done: make(chan struct{})}
	if o.batchUnits > 1 {
		l.queue = make(chan *request, batchQueueMax)
		go l.committer()
	} else {
		close(l.done)
	}
	return l
}

// Close stops the batch committer after the units already queued are done.
func (l *Ledger) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		if l.queue != nil {
			close(l.queue)
		}
	}
	l.mu.Unlock()
	<-l.done
}

var errClosed = softatm.Errorf(softatm.EUnavailable, "the ledger is closed")

// Commit applies the unit atomically: Apply, then the transfers. It returns
// the business date the unit landed in. Refusals have codes: ETillShort,
// EConflict (same id with other fields; a pending already resolved),
// EInvalidAmount, ENotFound (unknown account), EInvalid.
//
// The outcome Commit reports is the outcome: if ctx ends before the
// unit's batch starts, the unit is dropped and Commit returns ctx.Err();
// once its batch has started, Commit waits for it (at most batchTimeout)
// and reports what the batch did. Only a connection lost during COMMIT
// leaves the outcome unknown.
func (l *Ledger) Commit(ctx context.Context, u Unit) (Result, error) {
	if err := validateUnit(u); err != nil {
		return Result{}, err
	}
	if u.At.IsZero() {
		u.At = l.opt.clock()
	}
	r := &request{ctx: ctx, unit: u, done: make(chan struct{})}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Result{}, errClosed
	}
	if l.queue == nil {
		l.mu.RUnlock()
		l.runBatch(ctx, []*request{r})
		return r.res, r.err
	}
	select {
	case l.queue <- r:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return Result{}, ctx.Err()
	}
	<-r.done // the committer finishes every queued request (see runBatch)
	return r.res, r.err
}

// Run commits fn as a unit with no transfers, in the committer's batch
// transaction with whatever units wait with it; fn follows Apply's rules
// (it may run again, and it must not touch accounts or transfers).
//
// Run is how the switch writes everything else (withdrawal states, the
// outbox, idempotency keys): with every writer going through the one
// committer, no two write transactions overlap, so SERIALIZABLE finds no
// read/write conflicts to abort, and concurrent writes share one commit.
// With batching off it is one transaction of its own, as RunTx would run.
func (l *Ledger) Run(ctx context.Context, fn func(pgx.Tx) error) error {
	_, err := l.Commit(ctx, Unit{undated: true, Apply: func(_ context.Context, tx pgx.Tx, _ time.Time) error { return fn(tx) }})
	return err
}

// Exec commits st as a unit with no transfers (see Unit.Stmt and Run) and
// returns how many rows it changed.
func (l *Ledger) Exec(ctx context.Context, st *Stmt) (int64, error) {
	dated := slices.ContainsFunc(st.Args, func(a any) bool { _, ok := a.(businessDateArg); return ok })
	res, err := l.Commit(ctx, Unit{undated: !dated, Stmt: st})
	return res.Changed, err
}

func validateUnit(u Unit) error {
	if u.Stmt != nil && u.Apply != nil {
		return softatm.Errorf(softatm.EInvalid, "a unit has an Apply or a Stmt, not both")
	}
	if u.Cutoff != nil && !u.Cutoff.valid() {
		return softatm.Errorf(softatm.EInvalid, "cut-off %s is not a time of day", u.Cutoff)
	}
	if u.Stmt != nil && u.Stmt.Row != nil && u.Stmt.Rows != nil {
		return softatm.Errorf(softatm.EInvalid, "a statement is read by Row or by Rows, not both")
	}
	if len(u.Transfers) > maxTransfersPerUnit {
		return softatm.Errorf(softatm.EInvalid, "a unit holds at most %d transfers", maxTransfersPerUnit)
	}
	ids := make(map[uuid.UUID]bool, len(u.Transfers))
	for i, t := range u.Transfers {
		if t.ID == uuid.Nil {
			return softatm.Errorf(softatm.EInvalid, "transfer %d: no id", i)
		}
		if ids[t.ID] {
			return softatm.Errorf(softatm.EInvalid, "transfer %d: id used twice in the unit", i)
		}
		ids[t.ID] = true
		switch t.Kind {
		case KindSingle, KindPending:
			if t.Amount <= 0 {
				return softatm.Errorf(softatm.EInvalidAmount, "transfer %d: amount must be positive", i)
			}
			if t.Debit == "" || t.Credit == "" {
				return softatm.Errorf(softatm.EInvalid, "transfer %d: debit and credit accounts are required", i)
			}
			if t.Debit == t.Credit {
				return softatm.Errorf(softatm.EInvalid, "transfer %d: debit and credit are the same account", i)
			}
			if t.PendingID != uuid.Nil {
				return softatm.Errorf(softatm.EInvalid, "transfer %d: pending id only for post or void", i)
			}
		case KindPostPending, KindVoidPending:
			if t.PendingID == uuid.Nil {
				return softatm.Errorf(softatm.EInvalid, "transfer %d: pending id required", i)
			}
			if t.Amount < 0 {
				return softatm.Errorf(softatm.EInvalidAmount, "transfer %d: negative amount", i)
			}
		default:
			return softatm.Errorf(softatm.EInvalid, "transfer %d: unknown kind %q", i, t.Kind)
		}
		if t.Currency == "" && (t.Kind == KindSingle || t.Kind == KindPending) {
			return softatm.Errorf(softatm.EInvalid, "transfer %d: currency required", i)
		}
	}
	return nil
}

// EnsureAccount creates the account if it does not exist. It is idempotent;
// an existing account with another currency or flags is an EConflict.
func (l *Ledger) EnsureAccount(ctx context.Context, code, currency string, flags Flags) error {
	if code == "" || currency == "" {
		return softatm.Errorf(softatm.EInvalid, "account code and currency are required")
	}
	return RunTx(ctx, l.pool, l.opt.maxRetries, func(tx pgx.Tx) error {
		return ensureAccount(ctx, tx, code, currency, flags)
	})
}

func ensureAccount(ctx context.Context, tx pgx.Tx, code, currency string, flags Flags) error {
	if _, err := tx.Exec(ctx, `INSERT INTO accounts (id, code, currency, flags) VALUES ($1, $2, $3, $4)
		ON CONFLICT (code) DO NOTHING`, uuid.New(), code, currency, int64(flags)); err != nil {
		return fmt.Errorf("creating account: %w", err)
	}
	var cur string
	var fl int64
	if err := tx.QueryRow(ctx, `SELECT currency, flags FROM accounts WHERE code = $1`, code).Scan(&cur, &fl); err != nil {
		return fmt.Errorf("reading account: %w", err)
	}
	if cur != currency || Flags(fl) != flags {
		return softatm.Errorf(softatm.EConflict, "account %s exists with currency %s flags %d", code, cur, fl)
	}
	return nil
}

const accountColumns = `id, code, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted`

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	var fl int64
	err := row.Scan(&a.ID, &a.Code, &a.Currency, &fl, &a.DebitsPending, &a.DebitsPosted, &a.CreditsPending, &a.CreditsPosted)
	a.Flags = Flags(fl)
	return a, err
}

// Account returns the account with the given code (ENotFound if none).
func (l *Ledger) Account(ctx context.Context, code string) (Account, error) {
	a, err := scanAccount(l.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE code = $1`, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, softatm.Errorf(softatm.ENotFound, "no account %s", code)
	}
	if err != nil {
		return Account{}, fmt.Errorf("reading account: %w", err)
	}
	return a, nil
}

// HoldTransfer is the pending transfer booked when the bank approves a hold:
// debit bank:<B>:receivable, credit cashout:in_flight. Its id is
// TransferID(withdrawalID, "hold").
func HoldTransfer(withdrawalID uuid.UUID, bank string, amount int64, currency string) Transfer {
	return Transfer{ID: TransferID(withdrawalID, "hold"), Debit: ReceivableCode(bank), Credit: AccountInFlight,
		Amount: amount, Currency: currency, Kind: KindPending, WithdrawalID: withdrawalID}
}

// VoidTransfer voids the hold of a cancelled or expired withdrawal.
func VoidTransfer(withdrawalID uuid.UUID, currency string) Transfer {
	return Transfer{ID: TransferID(withdrawalID, "void"), Currency: currency, Kind: KindVoidPending,
		PendingID: TransferID(withdrawalID, "hold"), WithdrawalID: withdrawalID}
}

// PayoutTransfers is the transfer set of a payout at post office P: post the
// hold, move the cash out of P's till, and, when fee > 0, book the fee
// (debit bank:<B>:receivable, credit fees:income). They must be committed in
// one Unit.
func PayoutTransfers(withdrawalID uuid.UUID, bank, postOffice string, amount, fee int64, currency string) []Transfer {
	ts := []Transfer{
		{ID: TransferID(withdrawalID, "post"), Amount: amount, Currency: currency, Kind: KindPostPending,
			PendingID: TransferID(withdrawalID, "hold"), WithdrawalID: withdrawalID},
		{ID: TransferID(withdrawalID, "payout"), Debit: AccountInFlight, Credit: TillCode(postOffice),
			Amount: amount, Currency: currency, Kind: KindSingle, WithdrawalID: withdrawalID},
	}
	if fee > 0 {
		ts = append(ts, Transfer{ID: TransferID(withdrawalID, "fee"), Debit: ReceivableCode(bank), Credit: AccountFees,
			Amount: fee, Currency: currency, Kind: KindSingle, WithdrawalID: withdrawalID})
	}
	return ts
}

// PayableCode is the account of what the switch owes bank: the cash its
// customers deposited at post offices, until the day's settlement nets it
// against the bank's receivable.
func PayableCode(bank string) string { return "bank:" + bank + ":payable" }

// DepositTransfer is the one transfer of a credited deposit: the cash came
// into the post office's till (debit) and is owed to the bank (credit its
// payable). Its id is derived from the deposit's, so a deposit is posted at
// most once however often its approval is retried.
func DepositTransfer(depositID uuid.UUID, bank, postOffice string, amount int64, currency string) Transfer {
	return Transfer{ID: TransferID(depositID, "deposit"), Debit: TillCode(postOffice), Credit: PayableCode(bank),
		Amount: amount, Currency: currency, Kind: KindSingle, WithdrawalID: depositID}
}
