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
		l.runBatch(context.Background(), l.gather(first))
	}
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
		err := RunTx(ctx, l.pool, l.opt.maxRetries, func(tx pgx.Tx) error {
			b := &batch{l: l, tx: tx, accounts: map[string]*batchAccount{}, days: map[time.Time]time.Time{}}
			for i, r := range live {
				res, uerr, berr := b.unit(ctx, r.unit, !single)
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
			return b.flush(ctx)
		})
		var ex *excludeUnit
		if errors.As(err, &ex) {
			live[ex.i].finish(Result{}, ex.err)
			live = slices.Delete(live, ex.i, ex.i+1)
			continue
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

// delta is a change of an account's four balance columns.
type delta struct{ dp, dpo, cp, cpo int64 }

func (d delta) zero() bool { return d == delta{} }

func (d *delta) add(o delta) { d.dp += o.dp; d.dpo += o.dpo; d.cp += o.cp; d.cpo += o.cpo }

type batchAccount struct {
	base  Account // as read, locked, at first touch in this attempt
	batch delta   // summed deltas of the units released so far
}

// batch is the state of one attempt of one batch transaction.
type batch struct {
	l        *Ledger
	tx       pgx.Tx
	accounts map[string]*batchAccount
	days     map[time.Time]time.Time // cut-off date -> open business date
}

// account returns the batch's view of an account, reading (and locking) it
// on first touch. Deltas are applied in memory and written once in flush.
func (b *batch) account(ctx context.Context, code string) (*batchAccount, error) {
	if a, ok := b.accounts[code]; ok {
		return a, nil
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
	return ba, nil
}

// unit applies one unit. uerr refuses only this unit (its savepoint is
// rolled back); berr aborts the whole attempt.
func (b *batch) unit(ctx context.Context, u Unit, savepoint bool) (res Result, uerr, berr error) {
	date, err := b.businessDate(ctx, u.At)
	if err != nil {
		return Result{}, nil, err
	}
	if savepoint {
		if _, err := b.tx.Exec(ctx, "SAVEPOINT ledger_unit"); err != nil {
			return Result{}, nil, err
		}
	}
	deltas := map[string]*delta{}
	err = b.unitBody(ctx, u, date, deltas)
	if err != nil {
		if IsRetryable(err) || ctx.Err() != nil {
			return Result{}, nil, err
		}
		if savepoint {
			if _, rerr := b.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT ledger_unit"); rerr != nil {
				return Result{}, err, &excludeUnit{}
			}
		}
		return Result{}, err, nil
	}
	if savepoint {
		if _, err := b.tx.Exec(ctx, "RELEASE SAVEPOINT ledger_unit"); err != nil {
			return Result{}, nil, err
		}
	}
	for code, d := range deltas {
		b.accounts[code].batch.add(*d)
	}
	return Result{BusinessDate: date}, nil, nil
}

func (b *batch) unitBody(ctx context.Context, u Unit, date time.Time, deltas map[string]*delta) error {
	if u.Apply != nil {
		if err := u.Apply(ctx, b.tx, date); err != nil {
			return err
		}
	}
	for i := range u.Transfers {
		if err := b.transfer(ctx, u.Transfers[i], date, deltas); err != nil {
			return err
		}
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

func (b *batch) loadTransfer(ctx context.Context, id uuid.UUID) (storedTransfer, bool, error) {
	var s storedTransfer
	var pid, wid *uuid.UUID
	var pamt *int64
	err := b.tx.QueryRow(ctx, `SELECT d.code, c.code, t.amount, t.currency, t.kind, t.pending_id, t.withdrawal_id, p.amount
		FROM transfers t
		JOIN accounts d ON d.id = t.debit_account_id
		JOIN accounts c ON c.id = t.credit_account_id
		LEFT JOIN transfers p ON p.id = t.pending_id
		WHERE t.id = $1`, id).Scan(&s.debit, &s.credit, &s.amount, &s.currency, &s.kind, &pid, &wid, &pamt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("reading transfer: %w", err)
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
	return s, true, nil
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

func (b *batch) transfer(ctx context.Context, t Transfer, date time.Time, deltas map[string]*delta) error {
	s, exists, err := b.loadTransfer(ctx, t.ID)
	if err != nil {
		return err
	}
	if exists {
		if !sameTransfer(t, s) {
			return softatm.Errorf(softatm.EConflict, "transfer %s exists with other fields", t.ID)
		}
		return nil // a retry: already booked
	}

	amount := t.Amount
	var pendingAmount int64
	if t.Kind == KindPostPending || t.Kind == KindVoidPending {
		p, ok, err := b.loadTransfer(ctx, t.PendingID)
		if err != nil {
			return err
		}
		if !ok {
			return softatm.Errorf(softatm.ENotFound, "no pending transfer %s", t.PendingID)
		}
		if p.kind != KindPending {
			return softatm.Errorf(softatm.EInvalid, "transfer %s is not pending", t.PendingID)
		}
		var resolvedBy Kind
		err = b.tx.QueryRow(ctx, `SELECT kind FROM transfers WHERE pending_id = $1`, t.PendingID).Scan(&resolvedBy)
		if err == nil {
			return softatm.Errorf(softatm.EConflict, "pending transfer %s is already resolved (%s)", t.PendingID, resolvedBy)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading pending resolution: %w", err)
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

	debit, err := b.account(ctx, t.Debit)
	if err != nil {
		return err
	}
	credit, err := b.account(ctx, t.Credit)
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
	if err := b.stage(t.Debit, debit, dd, deltas, amount); err != nil {
		return err
	}
	// On a refusal the unit's deltas are dropped whole (they are merged
	// into the batch only after RELEASE), so no undo is needed here.
	if err := b.stage(t.Credit, credit, cd, deltas, amount); err != nil {
		return err
	}

	var pid, wid any
	if t.PendingID != uuid.Nil {
		pid = t.PendingID
	}
	if t.WithdrawalID != uuid.Nil {
		wid = t.WithdrawalID
	}
	if _, err := b.tx.Exec(ctx, `INSERT INTO transfers
		(id, debit_account_id, credit_account_id, amount, currency, kind, pending_id, withdrawal_id, business_date)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, debit.base.ID, credit.base.ID, amount, t.Currency, string(t.Kind), pid, wid, date); err != nil {
		return fmt.Errorf("inserting transfer: %w", err)
	}
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

// flush writes one balance UPDATE per touched account and asserts that the
// database agrees with the in-memory running balance.
func (b *batch) flush(ctx context.Context) error {
	codes := make([]string, 0, len(b.accounts))
	for code, a := range b.accounts {
		if !a.batch.zero() {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	for _, code := range codes {
		a := b.accounts[code]
		want := balance(a.base, a.batch)
		if want.DebitsPending < 0 || want.CreditsPending < 0 || want.DebitsPosted < 0 || want.CreditsPosted < 0 {
			return softatm.Errorf(softatm.EInternal, "ledger invariant: account %s would go negative", code)
		}
		var got Account
		err := b.tx.QueryRow(ctx, `UPDATE accounts SET
			debits_pending = debits_pending + $2, debits_posted = debits_posted + $3,
			credits_pending = credits_pending + $4, credits_posted = credits_posted + $5
			WHERE id = $1
			RETURNING debits_pending, debits_posted, credits_pending, credits_posted`,
			a.base.ID, a.batch.dp, a.batch.dpo, a.batch.cp, a.batch.cpo).
			Scan(&got.DebitsPending, &got.DebitsPosted, &got.CreditsPending, &got.CreditsPosted)
		if err != nil {
			return fmt.Errorf("updating balances of %s: %w", code, err)
		}
		if got.DebitsPending != want.DebitsPending || got.DebitsPosted != want.DebitsPosted ||
			got.CreditsPending != want.CreditsPending || got.CreditsPosted != want.CreditsPosted {
			return softatm.Errorf(softatm.EInternal, "ledger invariant: balances of %s changed under the batch", code)
		}
	}
	return nil
}
