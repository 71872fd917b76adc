package atmswitch

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// Store is the switch's record: withdrawals, the outbox, and what the
// lifecycle reads of banks, post offices and tills. Its one write of a
// withdrawal's state is Apply, which runs a row of the lifecycle table
// (lifecycle.go); the PostgreSQL adapter (store_pg.go) sends every write
// through the ledger's committer, so a state change and its transfers
// commit together. Tests also run the lifecycle on an in-memory fake.
type Store interface {
	// InsertRequest records a new withdrawal in state requested, bound to
	// its ClientKey; it fails with errRRNTaken when another withdrawal holds
	// its RRN, errKeyBound when another is bound to its key.
	InsertRequest(ctx context.Context, w Withdrawal) error
	// ByClientKey returns the withdrawal bound to a client's idempotency
	// key (ENotFound when none is).
	ByClientKey(ctx context.Context, key string) (Withdrawal, error)
	// Renumber replaces a reserved withdrawal's numeric code hash
	// (errNumericTaken when another withdrawal has it).
	Renumber(ctx context.Context, id uuid.UUID, numericHash []byte) error
	// Get returns a withdrawal (ENotFound when there is none).
	Get(ctx context.Context, id uuid.UUID) (Withdrawal, error)
	// Apply commits a move: its conditional state change, the transfers
	// and the outbox message of its transition, atomically. It fails with
	// ledger.ErrUnchanged when the withdrawal was not where the move
	// starts (see late), and errNumericTaken when an approval's numeric
	// code is another withdrawal's.
	Apply(ctx context.Context, m Move) (ledger.Result, error)
	// Due lists up to n withdrawals the sweeper must move by ev: codes
	// expired before, claims lapsed before, requests made before.
	Due(ctx context.Context, ev Event, before time.Time, n int) ([]uuid.UUID, error)

	// BankNames returns every bank's name by code.
	BankNames(ctx context.Context) (map[string]string, error)
	// BankLimits returns every bank's own limits (bank code → limits; a
	// nil field: the configured default).
	BankLimits(ctx context.Context) (map[string]BankLimits, error)
	// BankCutoffs returns every bank's business-day cut-off.
	BankCutoffs(ctx context.Context) (map[string]ledger.Cutoff, error)
	// PaidReceipt returns what a receipt prints about a withdrawal
	// (receipt.go; ENotFound when there is none).
	PaidReceipt(ctx context.Context, id uuid.UUID) (PaidReceipt, error)
	// Live returns an account's withdrawals in live states (requested,
	// reserved, claimed), newest first (citizen.go).
	Live(ctx context.Context, bank, account string) ([]Withdrawal, error)
	// BankRanges returns every bank's account ranges (bank code → prefixes).
	BankRanges(ctx context.Context) (map[string][]string, error)
	// ActiveByAccount lists up to n of an account's withdrawals in
	// ActiveStates, newest first: reserved ones only while they expire
	// after now.
	ActiveByAccount(ctx context.Context, bank, account string, now time.Time, n int) ([]Withdrawal, error)
	// AccountUsed sums the account's withdrawals in live states since.
	AccountUsed(ctx context.Context, bank, account string, since time.Time) (int64, error)
	// NumericHandle finds the withdrawal of a numeric code's keyed hash,
	// and whether the code is blocked for numeric entry (ENotFound when
	// no withdrawal has it).
	NumericHandle(ctx context.Context, numericHash []byte) (uuid.UUID, bool, error)
	// CountWrongPhone compares the phone digits' keyed hash with the
	// withdrawal's and, when they differ and the code is not blocked,
	// counts the failure and blocks the code at blockAt, in one
	// conditional statement. wrong is false for right digits or a code
	// already blocked.
	CountWrongPhone(ctx context.Context, id uuid.UUID, phoneHash []byte, blockAt int) (wrong, blockedNow bool, err error)
	// Till returns the cash a post office's till holds and its daily
	// payout limit (0: none).
	Till(ctx context.Context, postOffice string) (cash, dailyLimit int64, err error)
	// PaidOn sums what a post office paid on a business day.
	PaidOn(ctx context.Context, postOffice string, day time.Time) (int64, error)
	// WithFee returns a withdrawal with its bank's fee.
	WithFee(ctx context.Context, id uuid.UUID) (Withdrawal, int64, error)
	// Payouts lists up to n payouts of a post office on a business day,
	// newest first, with their count and sum.
	Payouts(ctx context.Context, postOffice string, day time.Time, n int) ([]Receipt, int64, int64, error)

	// Lease leases up to n due outbox messages to owner until until: of
	// the withdrawals of banks only, when banks is not nil.
	Lease(ctx context.Context, owner string, now, until time.Time, n int, banks []string) ([]outboxMsg, error)
	// AnyDue reports whether a message of banks' withdrawals is due and
	// not leased: a plain read, off the committer, so that a link's
	// worker with nothing to send costs the committer nothing.
	AnyDue(ctx context.Context, now time.Time, banks []string) (bool, error)
	// ForMessage returns the withdrawal a message is about and the post
	// office that paid it (zero when none did).
	ForMessage(ctx context.Context, withdrawalID uuid.UUID) (Withdrawal, PaidAt, error)
	// Answered ends a message with the bank's answer (state "done" or
	// "exception"); an acknowledged advice completes its withdrawal in the
	// same statement. ended reports whether this call ended the message
	// (it was still pending, not taken over by another instance); it is
	// exact for every message that does not complete its withdrawal, so
	// for every exception.
	Answered(ctx context.Context, m outboxMsg, state, rc string, now time.Time) (ended bool, err error)
	// RetryLater puts a message back for another try at next, or, with
	// state "exception", gives it up; moved reports whether the message
	// was still pending (this call changed it).
	RetryLater(ctx context.Context, m outboxMsg, state string, attempts int, next time.Time, cause string) (moved bool, err error)
	// ReplyMismatch keeps, for finance, a bank reply that did not match
	// its request (detail: both messages, accounts masked).
	ReplyMismatch(ctx context.Context, withdrawalID uuid.UUID, detail string, at time.Time) error
	// Exceptions lists up to n outbox exceptions, unresolved first.
	Exceptions(ctx context.Context, n int) ([]OutboxException, error)
	// ResolveException notes what was done about an exception (ENotFound
	// when there is no such exception).
	ResolveException(ctx context.Context, id uuid.UUID, note string) error
	// Requeue puts an exception back to be sent again (ENotFound when there
	// is no such exception, or it is not a message).
	Requeue(ctx context.Context, id uuid.UUID, now time.Time) error
	// OutboxDepth returns the messages waiting and the oldest one's time.
	OutboxDepth(ctx context.Context) (int64, time.Time, error)

	// LeaseCallbacks leases up to n due callbacks to owner until until:
	// of each withdrawal only its first pending one (callbacks.go).
	LeaseCallbacks(ctx context.Context, owner string, now, until time.Time, n int) ([]callback, error)
	// CallbackDelivered ends a callback the receiver accepted.
	CallbackDelivered(ctx context.Context, id uuid.UUID, status int, now time.Time) error
	// CallbackRetry puts a callback back for another try at next, or, with
	// state "exception", gives it up.
	CallbackRetry(ctx context.Context, id uuid.UUID, state string, attempts, status int, next time.Time, cause string) error
	// CallbacksPending counts the callbacks waiting.
	CallbacksPending(ctx context.Context) (int64, error)

	// The deposit lifecycle's reads and its insert (store_deposit_pg.go).
	DepositStore
}

var (
	errRRNTaken     = errors.New("the RRN is another withdrawal's")
	errNumericTaken = errors.New("the numeric code is another withdrawal's")
	errKeyBound     = errors.New("the idempotency key is another withdrawal's")
)

// PaidAt is the post office that paid a withdrawal, as field 43 of its
// advice names it.
type PaidAt struct {
	Name     string // post_offices.name
	Location string // post_offices.location: "town, province"
}

// Town is the location's first part ("Dong Dang" of "Dong Dang, Lang
// Son"): field 43's city.
func (p PaidAt) Town() string {
	town, _, _ := strings.Cut(p.Location, ",")
	return strings.TrimSpace(town)
}

// outboxMsg is a leased message.
type outboxMsg struct {
	id           uuid.UUID
	withdrawalID uuid.UUID
	kind         string
	attempts     int
	// bankDate is the business date the bank named in its answer to an
	// advice (field 15); zero when it named none.
	bankDate time.Time
}

var errLate = errors.New("withdrawal left the expected state")

// late explains a refused move: when err is ledger.ErrUnchanged the
// withdrawal had left the state the move expected; late loads it into
// *current and returns errLate, for the caller to explain with stateError.
// A conflict from the ledger means the same: the batch checks a unit's
// transfers before it runs its statement, so a hold already captured or
// released is refused there first. Other errors pass through.
func (s *Service) late(ctx context.Context, err error, id uuid.UUID, current *Withdrawal) error {
	if !errors.Is(err, ledger.ErrUnchanged) && softatm.ErrorCode(err) != softatm.EConflict {
		return err
	}
	w, rerr := s.store.Get(ctx, id)
	if rerr != nil {
		return rerr
	}
	if !errors.Is(err, ledger.ErrUnchanged) && (w.State == StateReserved || w.State == StateClaimed) {
		return err // the hold is still open: the conflict is not explained by the state
	}
	*current = w
	return errLate
}

// stateError explains, in the error vocabulary, why a withdrawal in state s
// cannot be scanned, paid or cancelled.
func stateError(w Withdrawal, now time.Time, holder string) error {
	switch w.State {
	case StatePaid, StateCompleted:
		return softatm.Errorf(softatm.ECodeUsed, "this code has already been paid")
	case StateCancelled:
		return softatm.Errorf(softatm.ECodeCancelled, "this code was cancelled")
	case StateExpired:
		return softatm.Errorf(softatm.ECodeExpired, "this code has expired")
	case StateDeclined, StateFailed:
		return softatm.Errorf(softatm.ECodeCancelled, "this code was never approved")
	case StateRequested:
		return softatm.Errorf(softatm.EConflict, "the bank has not approved this code yet")
	case StateClaimed:
		if w.ClaimedBy != holder {
			return softatm.Errorf(softatm.ECodeClaimed, "another counter is paying this code")
		}
		if w.ClaimUntil.Before(now) {
			return softatm.Errorf(softatm.EConflict, "your claim on this code has ended; scan it again")
		}
		return softatm.Errorf(softatm.EConflict, "this code is already claimed by you")
	case StateReserved:
		if !w.ExpiresAt.IsZero() && now.After(w.ExpiresAt) {
			return softatm.Errorf(softatm.ECodeExpired, "this code has expired")
		}
		return softatm.Errorf(softatm.EConflict, "scan the code before confirming")
	}
	return softatm.Errorf(softatm.EConflict, "withdrawal is %s", w.State)
}
