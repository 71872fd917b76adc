package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema/schematest"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// memStore is an in-memory Store for the lifecycle's rules: Apply follows
// the table's Go form (allowed). Methods it does not implement panic
// through the nil embedded Store.
type memStore struct {
	Store
	mu     sync.Mutex
	rows   map[uuid.UUID]Withdrawal
	queued map[uuid.UUID][]Message
}

func newMemStore() *memStore {
	return &memStore{rows: map[uuid.UUID]Withdrawal{}, queued: map[uuid.UUID][]Message{}}
}

func (f *memStore) Get(_ context.Context, id uuid.UUID) (Withdrawal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.rows[id]
	if !ok {
		return Withdrawal{}, softatm.Errorf(softatm.ENotFound, "withdrawal not found")
	}
	return w, nil
}

func (f *memStore) Apply(_ context.Context, m Move) (ledger.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.rows[m.ID]
	if !ok {
		return ledger.Result{}, ledger.ErrUnchanged
	}
	t, ok := allowed(w, m)
	if !ok {
		return ledger.Result{}, ledger.ErrUnchanged
	}
	w.State, w.UpdatedAt = t.To, m.At
	for _, c := range m.Set {
		switch c.Name {
		case "claimed_by":
			w.ClaimedBy = c.Value.(string)
		case "claim_until":
			w.ClaimUntil, _ = c.Value.(time.Time)
		}
	}
	f.rows[m.ID] = w
	if t.Queues != MsgNone {
		f.queued[m.ID] = append(f.queued[m.ID], t.Queues)
	}
	if m.Into != nil {
		*m.Into = w
	}
	return ledger.Result{Changed: 1}, nil
}

// The moment every case of the walk happens at, and its holder.
var (
	walkAt     = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	walkBefore = walkAt.Add(-30 * time.Second) // the clock skew
	walkHolder = "u1@KLS00101"
)

// satisfy sets w's fields so that c holds for the walk's move; violate so
// that it does not.
func satisfy(w *Withdrawal, c Cond) {
	switch c {
	case CondFresh:
		w.ExpiresAt = walkAt.Add(time.Hour)
	case CondHolder, CondHolderOrLapsed:
		w.ClaimedBy = walkHolder
	case CondClaimLive:
		w.ClaimUntil = walkAt.Add(time.Minute)
	case CondLapsedBefore:
		w.ClaimUntil = walkBefore.Add(-time.Hour)
	}
}

func violate(w *Withdrawal, c Cond) {
	switch c {
	case CondFresh:
		w.ExpiresAt = walkBefore.Add(-time.Second)
	case CondHolder:
		w.ClaimedBy = "u2@KLS00102"
	case CondHolderOrLapsed:
		w.ClaimedBy, w.ClaimUntil = "u2@KLS00102", walkAt.Add(time.Minute)
	case CondClaimLive:
		w.ClaimUntil = walkAt.Add(-time.Second)
	case CondLapsedBefore:
		w.ClaimUntil = walkAt.Add(time.Minute)
	}
}

// walkCase is one (state, event) pair, with the row's conditions satisfied
// or one of them violated; kind is the lifecycle of the move (the record's
// is w.Kind).
type walkCase struct {
	name  string
	w     Withdrawal
	kind  Kind
	ev    Event
	allow bool
	to    State
	queue Message
}

// kindEvents are the events each lifecycle has rows for: a move of an
// event its lifecycle lacks is a programming error (targetOf panics).
var kindEvents = map[Kind][]Event{
	KindWithdrawal: {EvApprove, EvDecline, EvFail, EvClaim, EvRelease, EvLapse, EvPay, EvCancel, EvExpire, EvComplete},
	KindDeposit:    {EvApprove, EvDecline, EvFail, EvClaim, EvRelease, EvLapse, EvSend, EvCancel, EvExpire},
}

// kindStates are each lifecycle's states.
var kindStates = map[Kind][]State{KindWithdrawal: States, KindDeposit: DepositStates}

// walkCases is the whole table walked, for both lifecycles: for every
// state and every event, a record that meets the conditions of the event's
// row from that state (it must move), or, where there is no such row, the
// conditions of every row of the event (it must still be refused); for each
// condition of each row, the same record with that one condition broken
// (refused); and every record moved by the other lifecycle's events, with
// every condition met (refused: the kind is part of the WHERE).
func walkCases() []walkCase {
	var out []walkCase
	for _, kind := range []Kind{KindWithdrawal, KindDeposit} {
		base := func(s State) Withdrawal {
			return Withdrawal{Kind: kind, State: s, Bank: "MB", Amount: 100_000, Currency: "704", ClaimedBy: "",
				ExpiresAt: walkAt.Add(time.Hour), ClaimUntil: walkAt.Add(time.Minute)}
		}
		for _, s := range kindStates[kind] {
			for _, ev := range kindEvents[kind] {
				row, ok := Transition{}, false
				for _, r := range rowsOfKind(kind, ev) {
					if r.From == s {
						row, ok = r, true
					}
				}
				w := base(s)
				if !ok {
					for _, r := range rowsOfKind(kind, ev) {
						for _, c := range r.When {
							satisfy(&w, c)
						}
					}
					out = append(out, walkCase{name: fmt.Sprintf("%s/%s/%s/no_row", kind, s, ev), w: w, kind: kind, ev: ev})
					continue
				}
				for _, c := range row.When {
					satisfy(&w, c)
				}
				out = append(out, walkCase{name: fmt.Sprintf("%s/%s/%s", kind, s, ev), w: w, kind: kind, ev: ev,
					allow: true, to: row.To, queue: row.Queues})
				for _, c := range row.When {
					bad := w
					violate(&bad, c)
					out = append(out, walkCase{name: fmt.Sprintf("%s/%s/%s/without_cond_%d", kind, s, ev, c), w: bad, kind: kind, ev: ev})
				}
			}
			other := KindDeposit
			if kind == KindDeposit {
				other = KindWithdrawal
			}
			for _, ev := range kindEvents[other] {
				w := base(s)
				for _, r := range rowsOfKind(other, ev) {
					for _, c := range r.When {
						satisfy(&w, c)
					}
				}
				out = append(out, walkCase{name: fmt.Sprintf("%s/%s/%s_of_%s", kind, s, ev, other), w: w, kind: other, ev: ev})
			}
		}
	}
	return out
}

func walkMove(c walkCase, id uuid.UUID) Move {
	return Move{Kind: c.kind, ID: id, Event: c.ev, At: walkAt, Before: walkBefore, Holder: walkHolder,
		Bank: "MB", PostOffice: "LS-001", Amount: 100_000, Currency: "704"}
}

func TestTransitionTable(t *testing.T) {
	t.Parallel()
	t.Run("rows of an event agree", func(t *testing.T) {
		for _, tr := range transitions {
			first := targetOf(tr.Kind, tr.On)
			if tr.To != first.To || tr.Posts != first.Posts || tr.Queues != first.Queues {
				t.Errorf("event %s: rows disagree: %+v vs %+v", tr.On, tr, first)
			}
			states := kindStates[tr.Kind.orWithdrawal()]
			if !slices.Contains(states, tr.From) || !slices.Contains(states, tr.To) {
				t.Errorf("row %+v names a state not in its kind's states", tr)
			}
		}
		for _, s := range DepositStates {
			if slices.Contains(States, s) {
				t.Errorf("state %s is both a withdrawal's and a deposit's", s)
			}
		}
	})
	t.Run("memory", func(t *testing.T) {
		for _, c := range walkCases() {
			f := newMemStore()
			id := uuid.New()
			c.w.ID = id
			f.rows[id] = c.w
			_, err := f.Apply(context.Background(), walkMove(c, id))
			checkWalk(t, c, err, f.rows[id].State, len(f.queued[id]))
		}
	})
	t.Run("postgres", func(t *testing.T) {
		pool, l := walkDB(t)
		st := newPGStore(pool, l, nil)
		for _, c := range walkCases() {
			id := uuid.New()
			insertWalkRow(t, pool, l, id, c.w)
			_, err := st.Apply(context.Background(), walkMove(c, id))
			var state string
			var queued int
			if err := pool.QueryRow(context.Background(), `SELECT state, (SELECT COUNT(*) FROM outbox WHERE withdrawal_id = $1)
				FROM withdrawals WHERE id = $1`, id).Scan(&state, &queued); err != nil {
				t.Fatal(err)
			}
			checkWalk(t, c, err, State(state), queued)
		}
	})
}

func checkWalk(t *testing.T, c walkCase, err error, got State, queued int) {
	t.Helper()
	switch {
	case c.allow && err != nil:
		t.Errorf("%s: refused: %v", c.name, err)
	case c.allow && (got != c.to || (c.queue != MsgNone) != (queued == 1) || queued > 1):
		t.Errorf("%s: state %s with %d messages, want %s (queues %q)", c.name, got, queued, c.to, c.queue)
	case !c.allow && err == nil:
		t.Errorf("%s: allowed, moved to %s", c.name, got)
	case !c.allow && !errors.Is(err, ledger.ErrUnchanged) && !slices.Contains([]string{softatm.EConflict, softatm.ENotFound}, softatm.ErrorCode(err)):
		// The ledger checks a unit's transfers before its statement: a
		// void or payout of a hold that is not open is its refusal.
		t.Errorf("%s: refused with %v, want ErrUnchanged or the ledger's refusal of the transfers", c.name, err)
	case !c.allow && (got != c.w.State || queued != 0):
		t.Errorf("%s: refused but state %s with %d messages", c.name, got, queued)
	}
}

func walkDB(t *testing.T) (*pgxpool.Pool, *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, schematest.MustMigratedDB(t, switchschema.All()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	l := ledger.New(pool)
	for _, q := range []string{
		`INSERT INTO banks (code, name, fee_amount) VALUES ('MB', 'MB Bank', 0)`,
		`INSERT INTO post_offices (code, name) VALUES ('LS-001', 'Dong Dang')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{ledger.AccountInFlight, ledger.AccountFees, ledger.AccountSettlement, ledger.ReceivableCode("MB"),
		ledger.PayableCode("MB")} {
		if err := l.EnsureAccount(ctx, a, "704", 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.EnsureAccount(ctx, ledger.TillCode("LS-001"), "704", ledger.FlagCreditsMustNotExceedDebits); err != nil {
		t.Fatal(err)
	}
	if err := l.Replenish(ctx, "LS-001", 1_000_000_000, "704", uuid.New()); err != nil {
		t.Fatal(err)
	}
	return pool, l
}

// insertWalkRow writes a withdrawal in w's state with the ledger in the
// state that goes with it: a hold open while reserved or claimed, posted
// once paid, voided once cancelled or expired.
func insertWalkRow(t *testing.T, pool *pgxpool.Pool, l *ledger.Ledger, id uuid.UUID, w Withdrawal) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO withdrawals (id, bank_code, account_number, holder_name_masked, amount, currency,
			state, terminal_id, stan, rrn, transmitted_at, expires_at, claimed_by, claim_until, created_at, updated_at, kind, post_office)
		VALUES ($1, 'MB', '9704000000000011', 'N', $2, '704', $3, 'SATM0001', '000001', $4, $5, $6, $7, $8, $5, $5, $9, 'LS-001')`,
		id, w.Amount, string(w.State), id.String()[:12], walkAt.Add(-time.Hour), w.ExpiresAt, w.ClaimedBy, w.ClaimUntil,
		string(w.Kind.orWithdrawal()))
	if err != nil {
		t.Fatal(err)
	}
	var transfers []ledger.Transfer
	switch w.State {
	case StateDepCredited:
		transfers = []ledger.Transfer{ledger.DepositTransfer(id, "MB", "LS-001", w.Amount, "704")}
	case StateReserved, StateClaimed:
		transfers = []ledger.Transfer{ledger.HoldTransfer(id, "MB", w.Amount, "704")}
	case StatePaid, StateCompleted:
		transfers = append([]ledger.Transfer{ledger.HoldTransfer(id, "MB", w.Amount, "704")},
			ledger.PayoutTransfers(id, "MB", "LS-001", w.Amount, 0, "704")...)
	case StateCancelled, StateExpired:
		transfers = []ledger.Transfer{ledger.HoldTransfer(id, "MB", w.Amount, "704"), ledger.VoidTransfer(id, "704")}
	}
	if len(transfers) > 0 {
		if _, err := l.Commit(ctx, ledger.Unit{At: walkAt, Transfers: transfers}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHoldByStateFromTheTable: the hold each state implies, as the design
// gives it, is what check.go reads off the lifecycle table.
func TestHoldByStateFromTheTable(t *testing.T) {
	t.Parallel()
	want := map[State]holdOf{
		StateRequested: holdNone, StateDeclined: holdNone, StateFailed: holdNone,
		StateReserved: holdOpen, StateClaimed: holdOpen,
		StatePaid: holdPosted, StateCompleted: holdPosted,
		StateCancelled: holdVoided, StateExpired: holdVoided,
	}
	if len(holdByState) != len(States) {
		t.Errorf("holds for %d states, want every one of %d", len(holdByState), len(States))
	}
	for s, h := range want {
		if got, ok := holdByState[s]; !ok || got != h {
			t.Errorf("state %s: hold %d (known %v), want %d", s, got, ok, h)
		}
	}
}
