package atmswitch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm/ledger"
)

// The withdrawal lifecycle as data: every state change of the switch is a
// row of the transitions table below, applied by one function (moveStmt)
// that turns it into one conditional UPDATE. No other code writes a
// withdrawal's state; other packages ask (PaidStates, LiveStates, ...), they
// do not write state names into their own SQL.

// Event is what happens to a withdrawal.
type Event string

// The events of the lifecycle.
const (
	EvApprove  Event = "approve"  // the bank's 0110 approved the hold
	EvDecline  Event = "decline"  // the bank's 0110 declined it
	EvFail     Event = "fail"     // no usable 0110 in time
	EvClaim    Event = "claim"    // a teller scanned the code
	EvRelease  Event = "release"  // the teller gave the claim up
	EvLapse    Event = "lapse"    // the claim's lease ran out (sweeper)
	EvPay      Event = "pay"      // the teller handed the cash over
	EvCancel   Event = "cancel"   // the citizen cancelled
	EvExpire   Event = "expire"   // the code's lifetime ran out (sweeper)
	EvComplete Event = "complete" // the bank acknowledged the 0220
	// EvSend: a deposit's teller confirmed the counted cash; the 0200 is
	// about to leave (deposit.go).
	EvSend Event = "send"
)

// Kind says which lifecycle a row of the table, a move and a record
// follow. Both live in the one table below and in the one SQL table
// (withdrawals, column kind, migration 00036): a deposit is a second
// lifecycle, not a copy of the first. A row, move or record whose Kind is
// empty is a withdrawal's, so the withdrawal rows read as they always did.
type Kind string

// The kinds.
const (
	KindWithdrawal Kind = "withdrawal"
	KindDeposit    Kind = "deposit"
)

// orWithdrawal is k, or KindWithdrawal when k is empty.
func (k Kind) orWithdrawal() Kind {
	if k == "" {
		return KindWithdrawal
	}
	return k
}

// Cond is a condition a transition needs besides its from-state. Each has
// an SQL form (the store's WHERE) and a Go form (the in-memory fake and the
// table's own tests), kept side by side in conds so they cannot drift.
type Cond int

// The conditions.
const (
	// CondFresh: the code has not expired (expires_at > Move.Before).
	CondFresh Cond = iota + 1
	// CondHolder: the claim is the mover's (claimed_by = Move.Holder).
	CondHolder
	// CondHolderOrLapsed: the claim is the mover's or its lease ended
	// (claim_until < Move.At): a teller may re-scan, or take over a claim
	// abandoned by another counter.
	CondHolderOrLapsed
	// CondClaimLive: the claim's lease has not ended (claim_until >=
	// Move.At). A claim made before the code expired may be paid until the
	// claim ends (the sweeper never expires a claimed code, so its hold is
	// live), never after.
	CondClaimLive
	// CondLapsedBefore: the claim's lease ended before Move.Before.
	CondLapsedBefore
)

// Message is a message to the bank a transition queues in the outbox.
type Message string

// The messages.
const (
	MsgNone     Message = ""
	MsgAdvice   Message = "advice"   // 0220 completion advice
	MsgReversal Message = "reversal" // 0420 reversal advice
)

// Posting is the set of ledger transfers a transition posts.
type Posting string

// The postings.
const (
	PostNone   Posting = ""
	PostHold   Posting = "hold"   // pending: bank receivable -> in flight
	PostPayout Posting = "payout" // post the pending, move the cash out of the till, the fee
	PostVoid   Posting = "void"   // void the pending
	// PostDeposit: the cash came into the till (debit) and the switch owes
	// it to the deposit's bank (credit its payable), ledger.DepositTransfer.
	PostDeposit Posting = "deposit"
)

// Transition is a row of the lifecycle table.
type Transition struct {
	Kind   Kind // empty: KindWithdrawal
	From   State
	On     Event
	To     State
	When   []Cond
	Posts  Posting
	Queues Message
}

// transitions is the lifecycle; see DESIGN.md. An event may have several
// rows (claim: from reserved, or again from claimed); they must agree on
// To, Posts and Queues, which TestTransitionTable checks.
var transitions = []Transition{
	{From: StateRequested, On: EvApprove, To: StateReserved, Posts: PostHold},
	{From: StateRequested, On: EvDecline, To: StateDeclined},
	{From: StateRequested, On: EvFail, To: StateFailed, Queues: MsgReversal},
	{From: StateReserved, On: EvClaim, To: StateClaimed, When: []Cond{CondFresh}},
	{From: StateClaimed, On: EvClaim, To: StateClaimed, When: []Cond{CondFresh, CondHolderOrLapsed}},
	{From: StateClaimed, On: EvRelease, To: StateReserved, When: []Cond{CondHolder}},
	{From: StateClaimed, On: EvLapse, To: StateReserved, When: []Cond{CondLapsedBefore}},
	{From: StateClaimed, On: EvPay, To: StatePaid, When: []Cond{CondHolder, CondClaimLive}, Posts: PostPayout, Queues: MsgAdvice},
	{From: StateReserved, On: EvCancel, To: StateCancelled, Posts: PostVoid, Queues: MsgReversal},
	{From: StateReserved, On: EvExpire, To: StateExpired, Posts: PostVoid, Queues: MsgReversal},
	{From: StatePaid, On: EvComplete, To: StateCompleted},

	// The deposit (cash-in) lifecycle, see deposit.go. A code is issued
	// (the bank's app, or a walk-in the teller started); a teller claims
	// it at the counter and counts the cash; on confirm the row is
	// committed in crediting before the 0200 leaves, so a crash while it
	// waits is found by the sweeper and reversed. Only the bank's approval
	// posts (till debited, bank's payable credited); a late approval finds
	// the row failed, posts nothing, and the queued 0420 reverses it.
	{Kind: KindDeposit, From: StateDepIssued, On: EvClaim, To: StateDepCounter, When: []Cond{CondFresh}},
	{Kind: KindDeposit, From: StateDepCounter, On: EvClaim, To: StateDepCounter, When: []Cond{CondFresh, CondHolderOrLapsed}},
	{Kind: KindDeposit, From: StateDepCounter, On: EvRelease, To: StateDepIssued, When: []Cond{CondHolder}},
	{Kind: KindDeposit, From: StateDepCounter, On: EvLapse, To: StateDepIssued, When: []Cond{CondLapsedBefore}},
	{Kind: KindDeposit, From: StateDepCounter, On: EvSend, To: StateDepCrediting, When: []Cond{CondHolder, CondClaimLive}},
	{Kind: KindDeposit, From: StateDepCrediting, On: EvApprove, To: StateDepCredited, Posts: PostDeposit},
	{Kind: KindDeposit, From: StateDepCrediting, On: EvDecline, To: StateDepDeclined},
	{Kind: KindDeposit, From: StateDepCrediting, On: EvFail, To: StateDepFailed, Queues: MsgReversal},
	{Kind: KindDeposit, From: StateDepIssued, On: EvCancel, To: StateDepCancelled},
	{Kind: KindDeposit, From: StateDepIssued, On: EvExpire, To: StateDepExpired},
}

// States lists every state.
var States = []State{StateRequested, StateReserved, StateDeclined, StateFailed, StateClaimed,
	StatePaid, StateCompleted, StateCancelled, StateExpired}

// The deposit lifecycle's states. Their names differ from every
// withdrawal state's, so a query that lists withdrawal states (AccountUsed,
// the invariants, the reports) never counts a deposit; the database's CHECK
// holds each kind to its own states (migration 00036).
const (
	StateDepIssued    State = "deposit_issued"    // a deposit code issued (app) or started (walk-in); no cash yet
	StateDepCounter   State = "at_counter"        // a teller holds it and counts the cash
	StateDepCrediting State = "crediting"         // the teller confirmed; 0200 sent or about to be
	StateDepCredited  State = "credited"          // the bank approved: till debited, bank's payable credited
	StateDepDeclined  State = "credit_declined"   // the bank said no: the cash is handed back, nothing posted
	StateDepFailed    State = "credit_failed"     // no usable 0210: the cash is handed back, 0420 queued
	StateDepCancelled State = "deposit_cancelled" // the citizen cancelled the code
	StateDepExpired   State = "deposit_expired"   // the code's lifetime ran out unused
)

// DepositStates lists every deposit state.
var DepositStates = []State{StateDepIssued, StateDepCounter, StateDepCrediting, StateDepCredited,
	StateDepDeclined, StateDepFailed, StateDepCancelled, StateDepExpired}

// CreditedStates are the states of a deposit the bank credited: the cash
// stays in the till.
var CreditedStates = []State{StateDepCredited}

// PaidStates are the states of a withdrawal whose cash was handed over.
var PaidStates = []State{StatePaid, StateCompleted}

// LiveStates are the states whose amount counts against an account's
// rolling daily limit: asked for, held, or paid.
var LiveStates = []State{StateRequested, StateReserved, StateClaimed, StatePaid, StateCompleted}

// DueStates are the states the sweeper watches. While a row is in one of
// them its due_at (a column generated from the row, migration 00051) is
// the time the sweeper's deadline runs from; in every other state it is
// NULL. State has no index, so that a claim and a completion are HOT
// updates: a query for rows of these states reads the live rows' index,
// WHERE due_at IS NOT NULL (or due_at < t) AND state = ..., never state
// alone. TestDueAtFollowsTheState holds the migration's expression to this
// list and to the sweeper's events.
var DueStates = []State{StateRequested, StateReserved, StateClaimed, StateDepIssued, StateDepCounter, StateDepCrediting}

// rowsOf returns the withdrawal lifecycle's rows for an event.
func rowsOf(ev Event) []Transition { return rowsOfKind(KindWithdrawal, ev) }

// rowsOfKind returns a lifecycle's rows for an event.
func rowsOfKind(k Kind, ev Event) []Transition {
	var out []Transition
	for _, t := range transitions {
		if t.On == ev && t.Kind.orWithdrawal() == k.orWithdrawal() {
			out = append(out, t)
		}
	}
	return out
}

// target returns the state, posting and message of a withdrawal's event.
func target(ev Event) Transition { return targetOf(KindWithdrawal, ev) }

// targetOf returns the state, posting and message of a lifecycle's event.
func targetOf(k Kind, ev Event) Transition {
	rows := rowsOfKind(k, ev)
	if len(rows) == 0 {
		panic(fmt.Sprintf("atmswitch: no %s transition for event %q", k.orWithdrawal(), ev))
	}
	return rows[0]
}

// Col is a column a move sets besides state and updated_at.
type Col struct {
	Name  string
	Value any
}

// Move is one state change asked of the store.
type Move struct {
	Kind   Kind // the lifecycle; empty: KindWithdrawal
	ID     uuid.UUID
	Event  Event
	At     time.Time // the event's time: updated_at, and "now" of the conditions
	Before time.Time // CondFresh: expires_at must be after it; CondLapsedBefore: claim_until before it
	Holder string    // CondHolder, CondHolderOrLapsed
	Set    []Col     // columns the move sets besides state and updated_at
	// Posting facts, for a transition that posts transfers.
	Bank       string
	PostOffice string
	Amount     int64
	Fee        int64
	Currency   string
	// Cutoff is the bank's cut-off, which dates a posting (nil: the
	// ledger's default).
	Cutoff *ledger.Cutoff
	// Into, if set, receives the moved row (only for a transition that
	// queues no message).
	Into *Withdrawal
	// TillRoom, if set, is a guard on other rows than the moved one: the
	// move happens only if the post office's till has room for Amount
	// under its cash cap, counting the deposits being credited there.
	// Checked in the move's statement, which the committer runs one at a
	// time, so two counters cannot both take the same room. The in-memory
	// fake has no till and does not check it.
	TillRoom *TillRoom
	// UnderLargeCash, if set, is another such guard: the account's
	// deposits of the business day, those being credited included, stay
	// under the large-cash threshold with this one. A confirm without the
	// depositor's ID number carries it, so that two counters confirming
	// one account's deposits at once cannot split a large sum under it.
	UnderLargeCash *UnderLargeCash
}

// guarded says whether m carries a guard over other rows than its own
// (TillRoom, UnderLargeCash).
func (m Move) guarded() bool { return m.TillRoom != nil || m.UnderLargeCash != nil }

// TillRoom is Move.TillRoom.
type TillRoom struct {
	PostOffice string
	Amount     int64
}

// UnderLargeCash is Move.UnderLargeCash.
type UnderLargeCash struct {
	Bank, Account string
	Day           time.Time // the business day credits are dated by
	Amount        int64
	Threshold     int64
}

// sql is the guard's SQL form (DepositedOn's sum, in the move's
// statement); arg adds a parameter. The account's rows are found by its
// (bank_code, account_number, created_at) index.
func (u UnderLargeCash) sql(arg func(any) string) string {
	return "(SELECT COALESCE(SUM(d.amount), 0) FROM withdrawals d WHERE d.kind = 'deposit' AND d.bank_code = " + arg(u.Bank) +
		" AND d.account_number = " + arg(u.Account) + " AND ((d.state = " + arg(string(StateDepCredited)) + " AND d.credit_date = " + arg(u.Day) +
		") OR d.state = " + arg(string(StateDepCrediting)) + ")) + " + arg(u.Amount) + " < " + arg(u.Threshold)
}

// sql is the guard's SQL form; arg adds a parameter. The deposits being
// credited are found among the live rows (due_at IS NOT NULL, DueStates):
// state alone has no index.
func (r TillRoom) sql(arg func(any) string) string {
	po := arg(r.PostOffice)
	return "(SELECT p.cash_cap = 0 OR COALESCE((SELECT a.debits_posted - a.credits_posted - a.credits_pending FROM accounts a WHERE a.code = " +
		arg(ledger.TillCode(r.PostOffice)) + "), 0) + (SELECT COALESCE(SUM(d.amount), 0) FROM withdrawals d WHERE d.due_at IS NOT NULL AND d.post_office = " + po +
		" AND d.state = " + arg(string(StateDepCrediting)) + ") + " + arg(r.Amount) + " <= p.cash_cap FROM post_offices p WHERE p.code = " + po + ")"
}

// holds is a condition's Go form, for the fake store and the table's tests.
func (c Cond) holds(w Withdrawal, m Move) bool {
	switch c {
	case CondFresh:
		return w.ExpiresAt.After(m.Before)
	case CondHolder:
		return w.ClaimedBy == m.Holder
	case CondHolderOrLapsed:
		return w.ClaimedBy == m.Holder || w.ClaimUntil.Before(m.At)
	case CondClaimLive:
		return !w.ClaimUntil.Before(m.At)
	case CondLapsedBefore:
		return w.ClaimUntil.Before(m.Before)
	}
	panic(fmt.Sprintf("atmswitch: unknown condition %d", c))
}

// sql is a condition's SQL form; arg adds a parameter and returns its
// placeholder.
func (c Cond) sql(m Move, arg func(any) string) string {
	switch c {
	case CondFresh:
		return "expires_at > " + arg(m.Before)
	case CondHolder:
		return "claimed_by = " + arg(m.Holder)
	case CondHolderOrLapsed:
		return "(claimed_by = " + arg(m.Holder) + " OR claim_until < " + arg(m.At) + ")"
	case CondClaimLive:
		return "claim_until >= " + arg(m.At)
	case CondLapsedBefore:
		return "claim_until < " + arg(m.Before)
	}
	panic(fmt.Sprintf("atmswitch: unknown condition %d", c))
}

// allowed says whether m may move w, by the table: the row for w's state
// and m's event, and its conditions. It is the Go form of moveStmt's WHERE.
func allowed(w Withdrawal, m Move) (Transition, bool) {
	if w.Kind.orWithdrawal() != m.Kind.orWithdrawal() {
		return Transition{}, false
	}
	for _, t := range rowsOfKind(m.Kind, m.Event) {
		if t.From != w.State {
			continue
		}
		ok := true
		for _, c := range t.When {
			ok = ok && c.holds(w, m)
		}
		if ok {
			return t, true
		}
	}
	return Transition{}, false
}

// sqlArgs collects a statement's parameters.
type sqlArgs struct{ args []any }

// add appends a parameter and returns its placeholder.
func (a *sqlArgs) add(v any) string {
	a.args = append(a.args, v)
	return fmt.Sprintf("$%d", len(a.args))
}

// moveUpdate is a move's conditional UPDATE of the withdrawal whose id is
// the SQL expression id: it sets the transition's state, updated_at and the
// move's columns, WHERE the withdrawal is in one of the event's from-states
// with that row's conditions.
func moveUpdate(m Move, a *sqlArgs, id string) string {
	rows := rowsOfKind(m.Kind, m.Event)
	set := []string{"state = " + a.add(string(targetOf(m.Kind, m.Event).To)), "updated_at = " + a.add(m.At)}
	for _, c := range m.Set {
		set = append(set, c.Name+" = "+a.add(c.Value))
	}
	where := make([]string, 0, len(rows))
	for _, r := range rows {
		conds := []string{"state = " + a.add(string(r.From))}
		for _, c := range r.When {
			conds = append(conds, c.sql(m, a.add))
		}
		where = append(where, "("+strings.Join(conds, " AND ")+")")
	}
	// The kind is matched too: a deposit's id moved by a withdrawal's
	// event (or the reverse) changes nothing, even where state names meet.
	guard := ""
	if m.TillRoom != nil {
		guard = " AND " + m.TillRoom.sql(a.add)
	}
	if m.UnderLargeCash != nil {
		guard += " AND " + m.UnderLargeCash.sql(a.add)
	}
	return fmt.Sprintf("UPDATE withdrawals SET %s WHERE id = %s AND kind = %s AND (%s)%s",
		strings.Join(set, ", "), id, a.add(string(m.Kind.orWithdrawal())), strings.Join(where, " OR "), guard)
}

// moveStmt turns a move into its one conditional statement (moveUpdate),
// with, inserted by the same statement only if the row moved: the
// callback to the withdrawal's bank client (notifyCTE, callbacks.go), and,
// for a transition that queues a message, the outbox row. It must change
// the row: when it changes none, the unit is refused with
// ledger.ErrUnchanged (the main statement's row count is the moved rows').
func moveStmt(m Move) *ledger.Stmt {
	var a sqlArgs
	update := moveUpdate(m, &a, a.add(m.ID))
	st := &ledger.Stmt{MustChange: true}
	returning := "id, client_id, state"
	if m.Into != nil {
		returning = "*"
	}
	with := fmt.Sprintf("WITH moved AS (%s RETURNING %s), %s\n", update, returning,
		notifyCTE(&a, "notified", m.Event, m.At, "moved", ""))
	switch q := targetOf(m.Kind, m.Event).Queues; {
	case q != MsgNone:
		if m.Into != nil {
			panic("atmswitch: a move that queues a message cannot return its row")
		}
		// seq keeps the messages of one withdrawal in order.
		update = with + fmt.Sprintf(`INSERT INTO outbox (id, withdrawal_id, seq, kind, state, next_attempt_at, created_at)
		SELECT %s, moved.id, COALESCE((SELECT MAX(seq) FROM outbox WHERE withdrawal_id = moved.id), 0) + 1,
			%s, 'pending', %s, %s FROM moved`, a.add(uuid.New()), a.add(string(q)), a.add(m.At), a.add(m.At))
	case m.Into != nil:
		update = with + "SELECT " + withdrawalColumns + " FROM moved"
		into := m.Into
		st.Row = func(r pgx.Row) error { return r.Scan(scanTargets(into)...) }
	default:
		update = with + "SELECT 1 FROM moved"
	}
	st.SQL, st.Args = update, a.args
	return st
}

// postings returns the transfers a move's transition posts.
func postings(m Move) []ledger.Transfer {
	switch targetOf(m.Kind, m.Event).Posts {
	case PostHold:
		return []ledger.Transfer{ledger.HoldTransfer(m.ID, m.Bank, m.Amount, m.Currency)}
	case PostPayout:
		return ledger.PayoutTransfers(m.ID, m.Bank, m.PostOffice, m.Amount, m.Fee, m.Currency)
	case PostVoid:
		return []ledger.Transfer{ledger.VoidTransfer(m.ID, m.Currency)}
	case PostDeposit:
		return []ledger.Transfer{ledger.DepositTransfer(m.ID, m.Bank, m.PostOffice, m.Amount, m.Currency)}
	}
	return nil
}

// bankCutoffOf is the cut-off of the bank whose withdrawal m posts for
// (its hold, its void): every posting of a withdrawal is dated as its bank
// dates it, not only the payout its settlement file lists. m names its
// bank, or its row does. When neither can be read the move is not made: a
// posting dated by a guess is worse than one retried (the sweeper comes
// back, a caller asks again).
func (s *Service) bankCutoffOf(ctx context.Context, m Move) (*ledger.Cutoff, error) {
	bank := m.Bank
	if bank == "" {
		w, err := s.store.Get(ctx, m.ID)
		if err != nil {
			return nil, fmt.Errorf("reading the withdrawal's bank for its cut-off: %w", err)
		}
		bank = w.Bank
	}
	return s.cutoffOf(ctx, bank)
}

// stateList renders states for an SQL IN list; state names are constants of
// this file, never input.
func stateList(ss []State) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + string(s) + "'"
	}
	return "(" + strings.Join(q, ",") + ")"
}

// apply runs a move through the store; a move that posts transfers is timed
// per posting (softatm_ledger_commit_seconds{unit}).
func (s *Service) apply(ctx context.Context, m Move) (ledger.Result, error) {
	posts := targetOf(m.Kind, m.Event).Posts
	if posts == PostNone {
		return s.store.Apply(ctx, m)
	}
	if m.Cutoff == nil {
		var err error
		if m.Cutoff, err = s.bankCutoffOf(ctx, m); err != nil {
			return ledger.Result{}, err
		}
	}
	start := time.Now()
	res, err := s.store.Apply(ctx, m)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.m.ledgerTx.WithLabelValues(string(posts), outcome).Observe(time.Since(start).Seconds())
	return res, err
}
