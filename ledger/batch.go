package ledger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	softatm "github.com/softatm/softatm"
)

// batchTimeout bounds one batch transaction, retries included, so that a
// stuck database cannot hold the committer (and every caller) forever.
const batchTimeout = 30 * time.Second

type request struct {
	ctx  context.Context
	unit Unit
	done chan struct{}
	res  Result
	err  error
}

func (r *request) finish(res Result, err error) {
	r.res, r.err = res, err
	close(r.done)
}

// committer gathers waiting units into batches until Close.
func (l *Ledger) committer() {
	defer close(l.done)
	// The queue is closed by Close; what was queued before is still run.
	for first := range l.queue {
		batch := l.gather(first)
		l.holdCommitLock() // lease.go: one committer at a time per database
		l.runBatch(context.Background(), batch)
		l.passCommitLock(false)
	}
	l.passCommitLock(true)
}

// gather takes up to batchUnits units, waiting at most batchWait for more.
func (l *Ledger) gather(first *request) []*request {
	batch := []*request{first}
	var timeout <-chan time.Time
	if l.opt.batchWait > 0 {
		t := time.NewTimer(l.opt.batchWait)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < l.opt.batchUnits {
		if timeout == nil {
			select {
			case r, ok := <-l.queue:
				if !ok {
					return batch
				}
				batch = append(batch, r)
				continue
			default:
				return batch
			}
		}
		select {
		case r, ok := <-l.queue:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		case <-timeout:
			return batch
		}
	}
	return batch
}

// excludeUnit aborts a batch attempt because unit i broke the transaction
// beyond a ROLLBACK TO SAVEPOINT; the batch is re-run without it.
type excludeUnit struct {
	i   int
	err error
}

func (e *excludeUnit) Error() string { return fmt.Sprintf("unit %d: %v", e.i, e.err) }

// runBatch commits reqs in one transaction (re-run whole on a retryable
// error) and hands each request its own result.
func (l *Ledger) runBatch(ctx context.Context, reqs []*request) {
	start := time.Now()
	defer func() {
		busy := int64(time.Since(start))
		l.batches.Add(1)
		l.units.Add(int64(len(reqs)))
		l.busyNanos.Add(busy)
		b := &l.bySize[sizeBucket(len(reqs))]
		b.batches.Add(1)
		b.units.Add(int64(len(reqs)))
		b.busyNanos.Add(busy)
	}()
	single := len(reqs) == 1 && l.queue == nil
	if !single {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, batchTimeout)
		defer cancel()
	}
	live := reqs[:0:0]
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.finish(Result{}, err)
			continue
		}
		live = append(live, r)
	}
	for len(live) > 0 {
		results := make([]Result, len(live))
		errs := make([]error, len(live))
		lazy := !slices.ContainsFunc(live, func(r *request) bool { return !isLazy(r.ctx) })
		begin := serializable
		if lazy {
			begin = lazyCommit
		}
		err := runTx(ctx, l.pool, l.opt.maxRetries, begin, func(tx pgx.Tx) error {
			ct := &countTx{Tx: tx, n: 2} // BEGIN before fn, COMMIT (or ROLLBACK) after it
			defer func() { l.roundTrips.Add(ct.n) }()
			b := newBatch(l, ct)
			units := make([]*Unit, len(live))
			for i, r := range live {
				units[i] = &r.unit
			}
			if err := b.preload(ctx, units); err != nil {
				return err
			}
			for i, r := range live {
				res, uerr, berr := b.unit(ctx, i, r.unit, !single)
				if berr != nil {
					if _, ok := berr.(*excludeUnit); ok {
						return &excludeUnit{i: i, err: uerr}
					}
					return berr
				}
				if uerr != nil && single {
					return uerr // nothing else in the transaction: roll it all back
				}
				results[i], errs[i] = res, uerr
			}
			if err := b.flush(ctx); err != nil {
				return err
			}
			for _, p := range b.piped {
				results[p.i].Changed = p.changed
				if p.err != nil {
					results[p.i], errs[p.i] = Result{}, p.err
				}
			}
			return nil
		})
		var ex *excludeUnit
		if errors.As(err, &ex) {
			live[ex.i].finish(Result{}, ex.err)
			live = slices.Delete(live, ex.i, ex.i+1)
			continue
		}
		switch {
		case err != nil:
		case lazy:
			l.lazyBatches.Add(1)
			l.lazyUnits.Add(int64(len(live)))
		default:
			for _, r := range live {
				if isBackground(r.ctx) {
					l.backgroundUnits.Add(1)
				}
			}
		}
		for i, r := range live {
			if err != nil {
				r.finish(Result{}, err)
			} else {
				r.finish(results[i], errs[i])
			}
		}
		return
	}
}

// countTx counts the round trips a batch attempt makes to the database
// (softatm_ledger_round_trips_total): the committer is serial, so every
// round trip of a batch delays every unit queued behind it. A pipelined
// pgx.Batch is one.
type countTx struct {
	pgx.Tx
	n int64
}

func (t *countTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t.n++
	return t.Tx.Exec(ctx, sql, args...)
}

func (t *countTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.n++
	return t.Tx.Query(ctx, sql, args...)
}

func (t *countTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	t.n++
	return t.Tx.QueryRow(ctx, sql, args...)
}

func (t *countTx) SendBatch(ctx context.Context, pb *pgx.Batch) pgx.BatchResults {
	t.n++
	return t.Tx.SendBatch(ctx, pb)
}

func (t *countTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	t.n++
	return t.Tx.CopyFrom(ctx, table, cols, src)
}

func (t *countTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	t.n++
	return t.Tx.Prepare(ctx, name, sql)
}

func (t *countTx) Begin(ctx context.Context) (pgx.Tx, error) {
	t.n++
	return t.Tx.Begin(ctx)
}

// delta is a change of an account's four balance columns.
type delta struct{ dp, dpo, cp, cpo int64 }

func (d delta) zero() bool { return d == delta{} }

func (d *delta) add(o delta) { d.dp += o.dp; d.dpo += o.dpo; d.cp += o.cp; d.cpo += o.cpo }

type batchAccount struct {
	base  Account // as read, locked, at the start of this attempt
	batch delta   // summed deltas of the units released so far
}

// batch is the state of one attempt of one batch transaction.
//
// Round trips are what a batch costs: the committer is one goroutine, so
// every unit's round trips to the database delay every unit queued behind
// it. So a batch reads what its transfers need up front, in one pipelined
// round trip (the transfers named by id, how their pendings were resolved,
// and every account they touch, locked in code order), checks each unit's
// transfers in memory against that view plus what earlier units of the
// batch staged, and writes all the transfers of the units that were
// accepted in one INSERT, pipelined with the one balance UPDATE per
// account, at the end. A Stmt unit's statement goes in that same last
// round trip, so it costs none of its own; an Apply unit costs the
// statements of its Apply (its savepoint rides on the first).
type batch struct {
	l        *Ledger
	tx       pgx.Tx
	accounts map[string]*batchAccount
	// asked holds the codes the preload looked for: one missing from
	// accounts does not exist (as of this attempt's snapshot).
	asked map[string]bool
	// transfers and resolved are the transfers the preload found plus what
	// released units staged; resolved maps a pending id to the kind of the
	// transfer that resolved it.
	transfers map[uuid.UUID]storedTransfer
	resolved  map[uuid.UUID]Kind
	rows      []transferRow           // staged by released units, inserted in flush
	days      map[time.Time]time.Time // cut-off date -> open business date
	// savepoint: a savepoint named ledger_unit exists. The next unit
	// releases it and sets a new one in the same round trip.
	savepoint bool
	// piped are the statements of accepted Stmt units, sent by flush.
	piped []pipedStmt
}

// pipedStmt is a Stmt unit's statement waiting for flush, and then what it
// did.
type pipedStmt struct {
	i         int // the unit's index in the batch
	st        *Stmt
	args      []any
	transfers bool // the unit booked transfers: refusing it needs a re-run
	changed   int64
	err       error
}

func newBatch(l *Ledger, tx pgx.Tx) *batch {
	return &batch{l: l, tx: tx, accounts: map[string]*batchAccount{}, asked: map[string]bool{},
		transfers: map[uuid.UUID]storedTransfer{}, resolved: map[uuid.UUID]Kind{}, days: map[time.Time]time.Time{}}
}

// unitState is what one unit staged; it joins the batch only when the unit
// is accepted, so a refused unit leaves nothing behind.
type unitState struct {
	deltas    map[string]*delta
	transfers map[uuid.UUID]storedTransfer
	resolved  map[uuid.UUID]Kind
	rows      []transferRow
	// sp is the unit's view of the transaction when it runs under a
	// savepoint (batched); nil when the whole transaction is the unit's.
	sp *spTx
	// added are accounts this unit read itself; they are forgotten when
	// the unit is refused, since the rollback also gave up their locks.
	added []string
}

// transferRow is one row of the transfers table to insert.
type transferRow struct {
	id, debitID, creditID   uuid.UUID
	amount                  int64
	currency                string
	kind                    Kind
	pendingID, withdrawalID uuid.UUID
	date                    time.Time
}

const transferSelect = `SELECT t.id, d.code, c.code, t.amount, t.currency, t.kind, t.pending_id, t.withdrawal_id, p.amount
	FROM transfers t
	JOIN accounts d ON d.id = t.debit_account_id
	JOIN accounts c ON c.id = t.credit_account_id
	LEFT JOIN transfers p ON p.id = t.pending_id`

// preload registers the units' business days and reads, in one pipelined
// round trip, every transfer the units name
// (by id or as the pending they resolve), how those pendings were resolved,
// and every account the units touch, locked FOR UPDATE in code order so
// that two batches (two switch instances) lock hot accounts in one order.
func (b *batch) preload(ctx context.Context, units []*Unit) error {
	var ids, pendings []uuid.UUID
	var codes []string
	seenID := map[uuid.UUID]bool{}
	addID := func(id uuid.UUID, list *[]uuid.UUID) {
		if !seenID[id] {
			seenID[id] = true
			ids = append(ids, id)
		}
		if list != nil {
			*list = append(*list, id)
		}
	}
	for _, u := range units {
		for _, t := range u.Transfers {
			addID(t.ID, nil)
			if t.Kind == KindPostPending || t.Kind == KindVoidPending {
				addID(t.PendingID, &pendings)
			}
			for _, c := range []string{t.Debit, t.Credit} {
				if c != "" && !b.asked[c] {
					b.asked[c] = true
					codes = append(codes, c)
				}
			}
		}
	}
	var cands []time.Time
	for _, u := range units {
		if c := b.l.unitDate(*u); !u.undated && !slices.Contains(cands, c) {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 && len(ids) == 0 && len(codes) == 0 {
		return nil // only undated units without transfers: nothing to read
	}
	if pendings == nil {
		pendings = []uuid.UUID{}
	}
	if codes == nil {
		codes = []string{}
	}
	pb := &pgx.Batch{}
	// The business day of each cut-off date, registered as businessDate
	// does; a closed one is left to businessDate, which finds the next open.
	for _, c := range cands {
		pb.Queue(`INSERT INTO business_days (date) VALUES ($1) ON CONFLICT (date) DO NOTHING`, c)
		pb.Queue(`SELECT closed FROM business_days WHERE date = $1`, c)
	}
	pb.Queue(transferSelect+` WHERE t.id = ANY($1)`, ids)
	pb.Queue(`SELECT pending_id, kind FROM transfers WHERE pending_id = ANY($1)`, pendings)
	pb.Queue(`SELECT `+accountColumns+` FROM accounts
		WHERE code = ANY($1) OR id IN (
			SELECT debit_account_id FROM transfers WHERE id = ANY($2)
			UNION SELECT credit_account_id FROM transfers WHERE id = ANY($2))
		ORDER BY code FOR UPDATE`, codes, pendings)
	br := b.tx.SendBatch(ctx, pb)
	defer br.Close()

	for _, c := range cands {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("registering business day: %w", err)
		}
		var closed bool
		if err := br.QueryRow().Scan(&closed); err != nil {
			return fmt.Errorf("reading business day: %w", err)
		}
		if !closed {
			b.days[c] = c
		}
	}

	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("reading transfers: %w", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var s storedTransfer
		var pid, wid *uuid.UUID
		var pamt *int64
		if err := rows.Scan(&id, &s.debit, &s.credit, &s.amount, &s.currency, &s.kind, &pid, &wid, &pamt); err != nil {
			rows.Close()
			return fmt.Errorf("reading transfers: %w", err)
		}
		if pid != nil {
			s.pendingID = *pid
		}
		if wid != nil {
			s.withdrawalID = *wid
		}
		if pamt != nil {
			s.pendingAmount = *pamt
		}
		b.transfers[id] = s
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading transfers: %w", err)
	}

	rows, err = br.Query()
	if err != nil {
		return fmt.Errorf("reading pending resolutions: %w", err)
	}
	for rows.Next() {
		var pid uuid.UUID
		var k Kind
		if err := rows.Scan(&pid, &k); err != nil {
			rows.Close()
			return fmt.Errorf("reading pending resolutions: %w", err)
		}
		b.resolved[pid] = k
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading pending resolutions: %w", err)
	}

	rows, err = br.Query()
	if err != nil {
		return fmt.Errorf("reading accounts: %w", err)
	}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("reading accounts: %w", err)
		}
		b.accounts[a.Code] = &batchAccount{base: a}
		b.asked[a.Code] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading accounts: %w", err)
	}
	return br.Close()
}

// account returns the batch's view of an account. The preload read (and
// locked) every account the batch's units name; one it did not ask for is
// read here, inside the unit's savepoint.
func (b *batch) account(ctx context.Context, code string, us *unitState) (*batchAccount, error) {
	if a, ok := b.accounts[code]; ok {
		return a, nil
	}
	if b.asked[code] {
		return nil, softatm.Errorf(softatm.ENotFound, "no account %s", code)
	}
	if us.sp != nil {
		if err := us.sp.open(ctx); err != nil {
			return nil, err
		}
	}
	a, err := scanAccount(b.tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE code = $1 FOR UPDATE`, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, softatm.Errorf(softatm.ENotFound, "no account %s", code)
	}
	if err != nil {
		return nil, fmt.Errorf("reading account: %w", err)
	}
	ba := &batchAccount{base: a}
	b.accounts[code] = ba
	us.added = append(us.added, code)
	return ba, nil
}

// spTx is the transaction as one unit sees it. The unit's savepoint costs
// no round trip of its own: it is sent, releasing the previous unit's, in
// one pipeline with the first statement of the unit's Apply. Savepoints
// are not nested: a deep nest of subtransactions slows every backend's
// snapshots in PostgreSQL. A unit that runs no SQL sets no savepoint.
type spTx struct {
	pgx.Tx
	b       *batch
	pending bool  // the savepoint is still to be sent
	sent    bool  // the savepoint is set: a refusal rolls back to it
	err     error // setting the savepoint failed: the attempt is lost
	exclude bool  // ... because of this unit's statement
}

func (t *spTx) savepointSQL() []string {
	if t.b.savepoint {
		return []string{"RELEASE SAVEPOINT ledger_unit", "SAVEPOINT ledger_unit"}
	}
	return []string{"SAVEPOINT ledger_unit"}
}

// open sets the savepoint now, if it is still to be sent.
func (t *spTx) open(ctx context.Context) error {
	if !t.pending {
		return t.err
	}
	t.pending = false
	for _, q := range t.savepointSQL() {
		if _, err := t.Tx.Exec(ctx, q); err != nil {
			t.err = err
			return err
		}
	}
	t.sent, t.b.savepoint = true, true
	return nil
}

// Exec sends the savepoint and the statement in one round trip, once the
// statement is known to be good. pgx prepares a statement new to the
// connection before it runs anything of the pipeline, so a statement that
// fails to prepare would break the transaction before the savepoint is
// set; a statement seen for the first time is therefore sent after it.
func (t *spTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if !t.pending || hasOptionArg(args) || !t.b.l.goodSQL(sql) {
		if err := t.open(ctx); err != nil {
			return pgconn.CommandTag{}, err
		}
		tag, err := t.Tx.Exec(ctx, sql, args...)
		if err == nil {
			t.b.l.markGoodSQL(sql)
		}
		return tag, err
	}
	t.pending = false
	stmts := t.savepointSQL()
	pb := &pgx.Batch{}
	for _, q := range stmts {
		pb.Queue(q)
	}
	pb.Queue(sql, args...)
	br := t.Tx.SendBatch(ctx, pb)
	for range stmts {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			t.err = err
			// Nothing ran, but the transaction is broken without a
			// savepoint of this unit's to return to: re-run the batch
			// without the unit.
			var pre pgx.ErrPreprocessingBatch
			t.exclude = errors.As(err, &pre)
			return pgconn.CommandTag{}, err
		}
	}
	t.sent, t.b.savepoint = true, true
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return tag, err
}

// hasOptionArg reports whether args start with a pgx query option, which a
// pgx.Batch does not take.
func hasOptionArg(args []any) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0].(type) {
	case pgx.QueryExecMode, pgx.QueryRewriter:
		return true
	}
	return false
}

func (t *spTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.open(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

func (t *spTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.open(ctx); err != nil {
		return errRow{err}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

func (t *spTx) SendBatch(ctx context.Context, pb *pgx.Batch) pgx.BatchResults {
	// A failed savepoint leaves the transaction aborted, so the batch fails
	// too; unit reports t.err.
	_ = t.open(ctx)
	return t.Tx.SendBatch(ctx, pb)
}

func (t *spTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.open(ctx); err != nil {
		return 0, err
	}
	return t.Tx.CopyFrom(ctx, table, cols, src)
}

func (t *spTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.open(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Prepare(ctx, name, sql)
}

func (t *spTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.open(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Begin(ctx)
}

// Conn and LargeObjects hand out ways around Exec; the savepoint is set
// first, so whatever Apply does with them is still the unit's alone.
func (t *spTx) Conn() *pgx.Conn {
	_ = t.open(context.Background())
	return t.Tx.Conn()
}

func (t *spTx) LargeObjects() pgx.LargeObjects {
	_ = t.open(context.Background())
	return t.Tx.LargeObjects()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// unit applies one unit. uerr refuses only this unit (its savepoint is
// rolled back); berr aborts the whole attempt.
func (b *batch) unit(ctx context.Context, i int, u Unit, savepoint bool) (res Result, uerr, berr error) {
	var date time.Time
	var err error
	if !u.undated {
		if date, err = b.businessDate(ctx, b.l.unitDate(u)); err != nil {
			return Result{}, nil, err
		}
	}
	// A Stmt unit's statement runs after its transfers are checked: sent
	// by flush (piped), or, alone or with a text not yet known to prepare,
	// now in the unit's savepoint (stmt).
	var piped *pipedStmt
	var stmt func(ctx context.Context, tx pgx.Tx) error
	if st := u.Stmt; st != nil {
		if savepoint && b.l.goodSQL(st.SQL) {
			piped = &pipedStmt{i: i, st: st, args: stmtArgs(st, date), transfers: len(u.Transfers) > 0}
		} else {
			stmt = func(ctx context.Context, tx pgx.Tx) error {
				n, err := execStmt(ctx, tx, st, stmtArgs(st, date))
				if err != nil {
					return err
				}
				b.l.markGoodSQL(st.SQL)
				res.Changed = n
				if n == 0 && st.MustChange {
					return ErrUnchanged
				}
				return nil
			}
		}
	}
	us := &unitState{deltas: map[string]*delta{}, transfers: map[uuid.UUID]storedTransfer{}, resolved: map[uuid.UUID]Kind{}}
	if savepoint {
		us.sp = &spTx{Tx: b.tx, b: b, pending: true}
	}
	err = b.unitBody(ctx, u, date, us, stmt)
	if us.sp != nil && us.sp.err != nil {
		// No savepoint of this unit's to roll back to.
		if us.sp.exclude {
			return Result{}, err, &excludeUnit{}
		}
		return Result{}, nil, us.sp.err
	}
	if err != nil {
		if IsRetryable(err) || ctx.Err() != nil {
			return Result{}, nil, err
		}
		if us.sp != nil && us.sp.sent {
			if _, rerr := b.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT ledger_unit"); rerr != nil {
				return Result{}, err, &excludeUnit{}
			}
		}
		for _, code := range us.added {
			delete(b.accounts, code)
		}
		return Result{}, err, nil
	}
	for code, d := range us.deltas {
		b.accounts[code].batch.add(*d)
	}
	for id, s := range us.transfers {
		b.transfers[id] = s
	}
	for id, k := range us.resolved {
		b.resolved[id] = k
	}
	b.rows = append(b.rows, us.rows...)
	if piped != nil {
		b.piped = append(b.piped, *piped)
	}
	return Result{BusinessDate: date, Changed: res.Changed}, nil, nil
}

// execStmt runs st on tx and returns how many rows it changed.
func execStmt(ctx context.Context, tx pgx.Tx, st *Stmt, args []any) (int64, error) {
	switch {
	case st.Rows != nil:
		rows, err := tx.Query(ctx, st.SQL, args...)
		if err != nil {
			return 0, err
		}
		return readRows(st, rows)
	case st.Row != nil:
		return rowChanged(st.Row(tx.QueryRow(ctx, st.SQL, args...)))
	}
	tag, err := tx.Exec(ctx, st.SQL, args...)
	return tag.RowsAffected(), err
}

// readRows hands a Rows statement's rows to st.Rows and returns how many
// rows the statement changed.
func readRows(st *Stmt, rows pgx.Rows) (int64, error) {
	err := st.Rows(rows)
	rows.Close()
	if rerr := rows.Err(); err == nil {
		err = rerr
	}
	return rows.CommandTag().RowsAffected(), err
}

// rowChanged turns what a Stmt's Row returned into rows changed.
func rowChanged(err error) (int64, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return 1, nil
}

// unitBody runs the unit's Apply, checks and stages its transfers, then
// runs stmt (a Stmt unit's statement, when not piped).
func (b *batch) unitBody(ctx context.Context, u Unit, date time.Time, us *unitState, stmt func(context.Context, pgx.Tx) error) error {
	var tx pgx.Tx = b.tx
	if us.sp != nil {
		tx = us.sp
	}
	if u.Apply != nil {
		if err := u.Apply(ctx, tx, date); err != nil {
			return err
		}
	}
	for _, e := range u.Expect {
		a, err := b.account(ctx, e.Account, us)
		if err != nil {
			return err
		}
		var ud delta
		if d, ok := us.deltas[e.Account]; ok {
			ud = *d
		}
		cur := balance(a.base, a.batch, ud)
		if got := cur.DebitsPosted - cur.CreditsPosted; got != e.Posted {
			return softatm.Wrap(softatm.EConflict,
				fmt.Sprintf("%s holds %d, not the %d expected: it moved meanwhile", e.Account, got, e.Posted), ErrBalanceMoved)
		}
	}
	for i := range u.Transfers {
		if err := b.transfer(ctx, u.Transfers[i], date, us); err != nil {
			return err
		}
	}
	if stmt != nil {
		return stmt(ctx, tx)
	}
	return nil
}

type storedTransfer struct {
	debit, credit string
	amount        int64
	currency      string
	kind          Kind
	pendingID     uuid.UUID
	withdrawalID  uuid.UUID
	pendingAmount int64 // for post/void: the amount of the pending
}

// lookup returns transfer id as this unit sees it: staged by the unit
// itself, by an earlier unit of the batch, or stored before the batch.
func (b *batch) lookup(us *unitState, id uuid.UUID) (storedTransfer, bool) {
	if s, ok := us.transfers[id]; ok {
		return s, true
	}
	s, ok := b.transfers[id]
	return s, ok
}

// resolution returns the kind of the transfer that resolved pending id, if any.
func (b *batch) resolution(us *unitState, id uuid.UUID) (Kind, bool) {
	if k, ok := us.resolved[id]; ok {
		return k, true
	}
	k, ok := b.resolved[id]
	return k, ok
}

// sameTransfer reports whether request t is a retry of the stored transfer s.
func sameTransfer(t Transfer, s storedTransfer) bool {
	if t.Kind != s.kind || t.PendingID != s.pendingID || t.WithdrawalID != s.withdrawalID {
		return false
	}
	if t.Currency != "" && t.Currency != s.currency {
		return false
	}
	resolving := t.Kind == KindPostPending || t.Kind == KindVoidPending
	if t.Debit != s.debit && !(resolving && t.Debit == "") {
		return false
	}
	if t.Credit != s.credit && !(resolving && t.Credit == "") {
		return false
	}
	switch t.Kind {
	case KindPostPending:
		return t.Amount == s.amount || (t.Amount == 0 && s.amount == s.pendingAmount)
	case KindVoidPending:
		return t.Amount == 0 || t.Amount == s.amount
	default:
		return t.Amount == s.amount
	}
}

// transfer checks t against the batch's view and stages it in us.
func (b *batch) transfer(ctx context.Context, t Transfer, date time.Time, us *unitState) error {
	if s, exists := b.lookup(us, t.ID); exists {
		if !sameTransfer(t, s) {
			return softatm.Errorf(softatm.EConflict, "transfer %s exists with other fields", t.ID)
		}
		return nil // a retry: already booked
	}

	amount := t.Amount
	var pendingAmount int64
	if t.Kind == KindPostPending || t.Kind == KindVoidPending {
		p, ok := b.lookup(us, t.PendingID)
		if !ok {
			return softatm.Errorf(softatm.ENotFound, "no pending transfer %s", t.PendingID)
		}
		if p.kind != KindPending {
			return softatm.Errorf(softatm.EInvalid, "transfer %s is not pending", t.PendingID)
		}
		if resolvedBy, ok := b.resolution(us, t.PendingID); ok {
			return softatm.Errorf(softatm.EConflict, "pending transfer %s is already resolved (%s)", t.PendingID, resolvedBy)
		}
		if (t.Debit != "" && t.Debit != p.debit) || (t.Credit != "" && t.Credit != p.credit) {
			return softatm.Errorf(softatm.EInvalid, "transfer %s: accounts differ from the pending", t.ID)
		}
		if t.Currency != "" && t.Currency != p.currency {
			return softatm.Errorf(softatm.EInvalid, "transfer %s: currency differs from the pending", t.ID)
		}
		t.Debit, t.Credit, t.Currency = p.debit, p.credit, p.currency
		pendingAmount = p.amount
		switch {
		case t.Kind == KindVoidPending:
			if amount != 0 && amount != p.amount {
				return softatm.Errorf(softatm.EInvalidAmount, "a void takes the whole pending amount")
			}
			amount = p.amount
		case amount == 0:
			amount = p.amount
		case amount > p.amount:
			return softatm.Errorf(softatm.EInvalidAmount, "post amount %d exceeds pending amount %d", amount, p.amount)
		}
	}

	debit, err := b.account(ctx, t.Debit, us)
	if err != nil {
		return err
	}
	credit, err := b.account(ctx, t.Credit, us)
	if err != nil {
		return err
	}
	if debit.base.Currency != t.Currency || credit.base.Currency != t.Currency {
		return softatm.Errorf(softatm.EInvalid, "transfer %s: currency %s does not match the accounts", t.ID, t.Currency)
	}

	var dd, cd delta
	switch t.Kind {
	case KindSingle:
		dd.dpo, cd.cpo = amount, amount
	case KindPending:
		dd.dp, cd.cp = amount, amount
	case KindPostPending:
		dd.dp, dd.dpo = -pendingAmount, amount
		cd.cp, cd.cpo = -pendingAmount, amount
	case KindVoidPending:
		dd.dp, cd.cp = -pendingAmount, -pendingAmount
	}
	if err := b.stage(t.Debit, debit, dd, us.deltas, amount); err != nil {
		return err
	}
	// On a refusal the unit's state is dropped whole (it joins the batch
	// only when the unit is accepted), so no undo is needed here.
	if err := b.stage(t.Credit, credit, cd, us.deltas, amount); err != nil {
		return err
	}

	us.transfers[t.ID] = storedTransfer{debit: t.Debit, credit: t.Credit, amount: amount, currency: t.Currency,
		kind: t.Kind, pendingID: t.PendingID, withdrawalID: t.WithdrawalID, pendingAmount: pendingAmount}
	if t.Kind == KindPostPending || t.Kind == KindVoidPending {
		us.resolved[t.PendingID] = t.Kind
	}
	us.rows = append(us.rows, transferRow{id: t.ID, debitID: debit.base.ID, creditID: credit.base.ID, amount: amount,
		currency: t.Currency, kind: t.Kind, pendingID: t.PendingID, withdrawalID: t.WithdrawalID, date: date})
	return nil
}

// stage adds d to the unit's deltas of account a and checks the account's
// limits against base + released batch deltas + this unit's deltas.
func (b *batch) stage(code string, a *batchAccount, d delta, deltas map[string]*delta, requested int64) error {
	ud, ok := deltas[code]
	if !ok {
		ud = &delta{}
		deltas[code] = ud
	}
	cur := balance(a.base, a.batch, *ud)
	next, ok := addBalance(cur, d)
	if !ok {
		return softatm.Errorf(softatm.EInvalidAmount, "amount overflows account %s", code)
	}
	if a.base.Flags&FlagCreditsMustNotExceedDebits != 0 && d.cp+d.cpo > 0 &&
		next.CreditsPending+next.CreditsPosted > next.DebitsPosted {
		avail := cur.DebitsPosted - cur.CreditsPosted - cur.CreditsPending
		return softatm.Errorf(softatm.ETillShort, "%s holds %d %s, cannot pay out %d", code, max(avail, 0), a.base.Currency, requested)
	}
	ud.add(d)
	return nil
}

func balance(base Account, ds ...delta) Account {
	for _, d := range ds {
		base.DebitsPending += d.dp
		base.DebitsPosted += d.dpo
		base.CreditsPending += d.cp
		base.CreditsPosted += d.cpo
	}
	return base
}

func addBalance(a Account, d delta) (Account, bool) {
	var ok [4]bool
	a.DebitsPending, ok[0] = addInt(a.DebitsPending, d.dp)
	a.DebitsPosted, ok[1] = addInt(a.DebitsPosted, d.dpo)
	a.CreditsPending, ok[2] = addInt(a.CreditsPending, d.cp)
	a.CreditsPosted, ok[3] = addInt(a.CreditsPosted, d.cpo)
	return a, ok[0] && ok[1] && ok[2] && ok[3]
}

func addInt(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

// insertTransfers inserts rows in one statement, in their order (a pending
// before the post that resolves it: the foreign key is checked at the end
// of the statement anyway).
const insertTransfers = `INSERT INTO transfers
	(id, debit_account_id, credit_account_id, amount, currency, kind, pending_id, withdrawal_id, business_date)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::uuid[], $8::uuid[], $9::date[])`

// flush writes, in one pipelined round trip, the staged transfers (one
// INSERT) and one balance UPDATE per touched account, and asserts that the
// database agrees with the in-memory running balance.
func (b *batch) flush(ctx context.Context) error {
	codes := make([]string, 0, len(b.accounts))
	for code, a := range b.accounts {
		if !a.batch.zero() {
			codes = append(codes, code)
		}
	}
	if len(b.rows) == 0 && len(codes) == 0 && len(b.piped) == 0 {
		return nil
	}
	slices.Sort(codes)
	pb := &pgx.Batch{}
	for _, p := range b.piped {
		pb.Queue(p.st.SQL, p.args...)
	}
	if n := len(b.rows); n > 0 {
		ids, debits, credits := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		amounts := make([]int64, n)
		currencies, kinds := make([]string, n), make([]string, n)
		pids, wids := make([]*uuid.UUID, n), make([]*uuid.UUID, n)
		dates := make([]time.Time, n)
		for i := range b.rows {
			r := &b.rows[i]
			ids[i], debits[i], credits[i], amounts[i] = r.id, r.debitID, r.creditID, r.amount
			currencies[i], kinds[i], dates[i] = r.currency, string(r.kind), r.date
			if r.pendingID != uuid.Nil {
				pids[i] = &r.pendingID
			}
			if r.withdrawalID != uuid.Nil {
				wids[i] = &r.withdrawalID
			}
		}
		pb.Queue(insertTransfers, ids, debits, credits, amounts, currencies, kinds, pids, wids, dates)
	}
	wants := make([]Account, len(codes))
	for i, code := range codes {
		a := b.accounts[code]
		want := balance(a.base, a.batch)
		if want.DebitsPending < 0 || want.CreditsPending < 0 || want.DebitsPosted < 0 || want.CreditsPosted < 0 {
			return softatm.Errorf(softatm.EInternal, "ledger invariant: account %s would go negative", code)
		}
		wants[i] = want
		pb.Queue(`UPDATE accounts SET
			debits_pending = debits_pending + $2, debits_posted = debits_posted + $3,
			credits_pending = credits_pending + $4, credits_posted = credits_posted + $5
			WHERE id = $1
			RETURNING debits_pending, debits_posted, credits_pending, credits_posted`,
			a.base.ID, a.batch.dp, a.batch.dpo, a.batch.cp, a.batch.cpo)
	}
	br := b.tx.SendBatch(ctx, pb)
	defer br.Close()
	if err := b.pipedResults(br); err != nil {
		return err
	}
	if len(b.rows) > 0 {
		if _, err := br.Exec(); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" {
				// Another transaction booked one of these ids (or resolved
				// one of these pendings) after this attempt's snapshot: a
				// re-run sees it and answers each unit properly.
				return Retryable(fmt.Errorf("inserting transfers: %w", err))
			}
			return fmt.Errorf("inserting transfers: %w", err)
		}
	}
	for i, code := range codes {
		want := wants[i]
		var got Account
		if err := br.QueryRow().Scan(&got.DebitsPending, &got.DebitsPosted, &got.CreditsPending, &got.CreditsPosted); err != nil {
			return fmt.Errorf("updating balances of %s: %w", code, err)
		}
		if got.DebitsPending != want.DebitsPending || got.DebitsPosted != want.DebitsPosted ||
			got.CreditsPending != want.CreditsPending || got.CreditsPosted != want.CreditsPosted {
			return softatm.Errorf(softatm.EInternal, "ledger invariant: balances of %s changed under the batch", code)
		}
	}
	return br.Close()
}

// pipedResults reads what the piped statements did. A statement that
// failed broke the transaction: the attempt ends, to be re-run without its
// unit (or, if it was a conflict, re-run whole). So does one that had to
// change a row, changed none, and booked transfers, which this attempt
// has already sent; without transfers its refusal is its alone.
func (b *batch) pipedResults(br pgx.BatchResults) error {
	for k := range b.piped {
		p := &b.piped[k]
		var err error
		switch {
		case p.st.Rows != nil:
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				p.changed, err = readRows(p.st, rows)
			}
		case p.st.Row != nil:
			p.changed, err = rowChanged(p.st.Row(br.QueryRow()))
		default:
			var tag pgconn.CommandTag
			tag, err = br.Exec()
			p.changed = tag.RowsAffected()
		}
		var pre pgx.ErrPreprocessingBatch
		switch {
		case errors.As(err, &pre):
			// A statement failed to prepare on this connection: nothing
			// ran, and which unit's is unknown. Send them one by one.
			for _, q := range b.piped {
				b.l.forgetSQL(q.st.SQL)
			}
			return Retryable(err)
		case err != nil && IsRetryable(err):
			return err
		case err != nil:
			return &excludeUnit{i: p.i, err: err}
		case p.changed == 0 && p.st.MustChange:
			if p.transfers {
				return &excludeUnit{i: p.i, err: ErrUnchanged}
			}
			p.err = ErrUnchanged
		}
	}
	return nil
}
