package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/idem"
	"github.com/softatm/softatm/switch/replay"
)

// ScanRequest is what a kiosk sends: a QR payload, or the numeric code with
// the last 4 digits of the citizen's phone.
type ScanRequest struct {
	QR         string `json:"qr"`
	Numeric    string `json:"numeric"`
	PhoneLast4 string `json:"phone_last4"`
}

// Scan checks a code and claims it for this teller, so that no other counter
// can pay it while the teller checks the citizen's ID. It refuses, before any
// cash is counted, a code the post office cannot pay.
func (s *Service) Scan(ctx context.Context, t Teller, r ScanRequest) (Withdrawal, error) {
	id, err := s.identify(ctx, t, r)
	if err != nil {
		return Withdrawal{}, err
	}
	now := s.now()
	w, err := s.store.Get(ctx, id)
	if err != nil {
		return Withdrawal{}, err
	}
	if w.Kind == KindDeposit {
		// One scan serves both directions: a deposit code is claimed for
		// cash in (deposit.go).
		return s.claimDeposit(ctx, t, w)
	}
	claimable := func(w Withdrawal) bool {
		return w.State == StateReserved || (w.State == StateClaimed && (w.ClaimedBy == t.holder() || now.After(w.ClaimUntil)))
	}
	if !claimable(w) {
		return Withdrawal{}, stateError(w, now, t.holder())
	}
	if now.After(w.ExpiresAt.Add(s.cfg.ClockSkew)) {
		return Withdrawal{}, softatm.Errorf(softatm.ECodeExpired, "this code has expired")
	}
	if err := s.checkTill(ctx, t.PostOffice, w.Amount); err != nil {
		// Another counter may have paid this very code meanwhile, emptying
		// the till: then that is the answer, not the till.
		if cur, rerr := s.store.Get(ctx, id); rerr == nil && !claimable(cur) {
			return Withdrawal{}, stateError(cur, now, t.holder())
		}
		return Withdrawal{}, err
	}

	// The fast gate: a spent marker or another teller's lease stops us here
	// without touching the database. If Redis is down we go on: the
	// conditional UPDATE below is the real guard.
	gated := false
	if s.gate != nil {
		if spent, err := s.gate.Spent(ctx, id.String()); err == nil && spent {
			w, err := s.store.Get(ctx, id)
			return Withdrawal{}, spentError(w, err, now, t)
		}
		ok, _, err := s.gate.Claim(ctx, id.String(), t.holder(), s.cfg.ClaimTTL)
		switch {
		case err != nil:
			s.m.redisFallback.Inc()
			s.log.Warn("replay guard unavailable; claiming in the database only", "withdrawal", id, "err", err)
		case !ok:
			return Withdrawal{}, softatm.Errorf(softatm.ECodeClaimed, "another counter is paying this code")
		default:
			gated = true
		}
	}
	var current Withdrawal
	_, err = s.apply(ctx, Move{ID: id, Event: EvClaim, At: now, Before: now.Add(-s.cfg.ClockSkew), Holder: t.holder(),
		Set:  []Col{{"claimed_by", t.holder()}, {"claimed_kiosk", t.Kiosk}, {"claim_until", now.Add(s.cfg.ClaimTTL)}},
		Into: &current})
	err = s.late(ctx, err, id, &current)
	if err != nil {
		if gated {
			_ = s.gate.Release(ctx, id.String(), t.holder())
		}
		if errors.Is(err, errLate) {
			return Withdrawal{}, stateError(current, now, t.holder())
		}
		return Withdrawal{}, err
	}
	s.m.transition(StateClaimed)
	return current, nil
}

// identify turns a scanned or typed code into a withdrawal id.
func (s *Service) identify(ctx context.Context, t Teller, r ScanRequest) (uuid.UUID, error) {
	if qr := strings.TrimSpace(r.QR); qr != "" {
		p, err := s.codes.Verify(ctx, qr)
		if err != nil {
			return uuid.Nil, err
		}
		return p.WithdrawalID, nil
	}
	if r.Numeric == "" {
		return uuid.Nil, softatm.Errorf(softatm.EInvalid, "scan a QR code or type the numeric code")
	}
	return s.identifyNumeric(ctx, t, r)
}

// Numeric entry: a 12-digit code is only a handle, and the last 4 digits of
// the citizen's phone are the secret, so guessing is capped four ways:
//
//   - per kiosk, per teller and per post office: NumericFailMax,
//     NumericFailMax and NumericPostOfficeFailMax wrong entries in a fixed
//     window of NumericFailWindow, counted in Redis. A try is taken from
//     every cap BEFORE it is evaluated, in one atomic step (replay.TakeTry),
//     and given back only when it was right; so however many guesses arrive
//     at once, at most the cap are evaluated. A try that reached no answer
//     (the database failed) is given back too: it taught the guesser
//     nothing. Without Redis these caps cannot be kept, so numeric entry is
//     refused (the QR code still works).
//   - per code: after NumericCodeFailMax wrong phone digits for one code,
//     the code is blocked for numeric entry for good; its QR code still
//     pays, and the bank's app sees numeric_blocked. This count lives on the
//     withdrawal's row (numeric_failures, numeric_blocked), not in Redis: it
//     is the cap that protects one citizen's money, and a Redis flush or
//     failover must not hand a guesser a fresh set of tries at it. The
//     phone digits are compared inside the conditional UPDATE that counts
//     them (one statement, the row locked), so parallel tries at one code
//     from many counters are evaluated at most NumericCodeFailMax times.
//   - there is no switch-wide cap: one let 190 wrong guesses from 38
//     tellers lock every post office out. softatm_numeric_failures_total
//     counts wrong entries, and an alert on its rate
//     (deploy/prometheus/alerts.yml) calls a person instead.
//
// The wrong-entry answer says how many tries the counter has left, at the
// end of its message ("(tries left: N)"): the error shape has no other
// field, and the kiosk page reads it from there. It does not say how many
// the code has left: that would tell a guesser the code exists.

// triesLeftSuffix ends the message of a wrong or refused numeric entry; the
// kiosk page (teller/web/assets/kiosk.js) reads the number from it.
const triesLeftSuffix = " (tries left: %d)"

// Values of the scope label of softatm_numeric_refusals_total.
const (
	scopeKiosk      = "kiosk"
	scopeTeller     = "teller"
	scopePostOffice = "post_office"
	scopeCode       = "code"
)

// numericCaps are the counters a numeric entry at t's counter is capped by;
// numericScopes[i] names caps[i] in metrics and messages.
func (s *Service) numericCaps(t Teller) []replay.Cap {
	return []replay.Cap{
		{Key: "numeric:kiosk:" + t.Kiosk, Limit: s.cfg.NumericFailMax},
		{Key: "numeric:teller:" + t.UserID, Limit: s.cfg.NumericFailMax},
		{Key: "numeric:po:" + t.PostOffice, Limit: s.cfg.NumericPostOfficeFailMax},
	}
}

var numericScopes = []string{scopeKiosk, scopeTeller, scopePostOffice}

// numericScopeWords names a scope to the teller.
var numericScopeWords = map[string]string{
	scopeKiosk: "this kiosk", scopeTeller: "this teller", scopePostOffice: "this post office",
}

// numericOutcome is what one evaluated numeric entry came to.
type numericOutcome int

const (
	numericRight       numericOutcome = iota
	numericMalformed                  // not 12 digits with a valid check digit, or not 4 phone digits
	numericUnknownCode                // no withdrawal has this code
	numericWrongPhone                 // the code exists; the phone digits are wrong
	numericBlocked                    // the code was blocked for numeric entry before this try
	numericBlockedNow                 // the phone digits are wrong, and this try blocked the code
)

func (s *Service) identifyNumeric(ctx context.Context, t Teller, r ScanRequest) (uuid.UUID, error) {
	if s.gate == nil {
		return uuid.Nil, softatm.Errorf(softatm.EUnavailable, "numeric codes are unavailable; scan the QR code")
	}
	if t.UserID == "" || t.Kiosk == "" || t.PostOffice == "" {
		// An empty name would make one counter shared by every such
		// teller: a lockout of them all.
		return uuid.Nil, softatm.Errorf(softatm.EForbidden, "numeric entry needs a teller at a kiosk of a post office")
	}
	caps := s.numericCaps(t)
	tries, err := s.gate.TakeTry(ctx, caps, s.cfg.NumericFailWindow)
	if err != nil {
		return uuid.Nil, softatm.Wrap(softatm.EUnavailable, "numeric codes are unavailable; scan the QR code", err)
	}
	if !tries.Taken {
		scope := numericScopes[tries.Full]
		s.m.numericRefusals.WithLabelValues(scope).Inc()
		minutes := max(int((tries.Wait+time.Minute-1)/time.Minute), 1)
		return uuid.Nil, softatm.Errorf(softatm.ELocked, "too many wrong numeric codes at %s; wait %d min or scan the QR code"+triesLeftSuffix,
			numericScopeWords[scope], minutes, 0)
	}
	id, outcome, err := s.evaluateNumeric(ctx, r)
	if err != nil || outcome == numericRight {
		// A right try, or one that reached no answer, is given back. Best
		// effort: if Redis fails now the try stays counted, which errs on
		// the safe side.
		if gerr := s.gate.GiveBackTry(ctx, caps); gerr != nil {
			s.log.Warn("giving back a numeric try", "err", gerr)
		}
	}
	if err != nil {
		return uuid.Nil, err
	}
	const blockedMessage = "this code is blocked for numeric entry after too many wrong phone digits; scan its QR code" + triesLeftSuffix
	switch outcome {
	case numericRight:
		return id, nil
	case numericBlocked:
		s.m.numericRefusals.WithLabelValues(scopeCode).Inc()
		return uuid.Nil, softatm.Errorf(softatm.ENumericBlocked, blockedMessage, tries.Left)
	case numericBlockedNow:
		s.m.numericFailures.WithLabelValues(outcome.reason()).Inc()
		s.m.numericCodesBlocked.Inc()
		s.log.Warn("code blocked for numeric entry after wrong phone digits", "withdrawal", id,
			"teller", t.UserID, "kiosk", t.Kiosk, "post_office", t.PostOffice)
		return uuid.Nil, softatm.Errorf(softatm.ENumericBlocked, blockedMessage, tries.Left)
	}
	s.m.numericFailures.WithLabelValues(outcome.reason()).Inc()
	// Who typed a wrong code, for the alert's investigation; never the code
	// or the digits. At most the caps' worth of lines per counter and window.
	s.log.Info("wrong numeric code entry", "reason", outcome.reason(), "teller", t.UserID, "kiosk", t.Kiosk,
		"post_office", t.PostOffice, "tries_left", tries.Left)
	return uuid.Nil, softatm.Errorf(softatm.ECodeInvalid, "the numeric code or phone digits are wrong"+triesLeftSuffix, tries.Left)
}

// reason is the reason label of softatm_numeric_failures_total.
func (o numericOutcome) reason() string {
	switch o {
	case numericMalformed:
		return "malformed"
	case numericUnknownCode:
		return "unknown_code"
	default:
		return "wrong_phone"
	}
}

// evaluateNumeric looks the code up and checks the phone digits, counting
// a wrong one on the code's row and blocking the code at
// NumericCodeFailMax. The comparison and the count are one conditional
// UPDATE, so it runs at most NumericCodeFailMax times with a wrong answer
// however many tries arrive at once; a right try writes nothing.
func (s *Service) evaluateNumeric(ctx context.Context, r ScanRequest) (uuid.UUID, numericOutcome, error) {
	numeric := code.NormalizeNumeric(r.Numeric)
	if !code.ValidNumeric(numeric) || !last4Re.MatchString(r.PhoneLast4) {
		return uuid.Nil, numericMalformed, nil
	}
	id, blocked, err := s.store.NumericHandle(ctx, code.HashNumeric(s.cfg.Secret, numeric))
	if softatm.ErrorCode(err) == softatm.ENotFound {
		return uuid.Nil, numericUnknownCode, nil
	}
	if err != nil {
		return uuid.Nil, 0, fmt.Errorf("looking up a numeric code: %w", err)
	}
	if blocked {
		return uuid.Nil, numericBlocked, nil
	}
	wrong, blockedNow, err := s.store.CountWrongPhone(ctx, id, code.HashPhone(s.cfg.Secret, id, r.PhoneLast4), s.cfg.NumericCodeFailMax)
	if err != nil {
		return uuid.Nil, 0, fmt.Errorf("counting wrong phone digits: %w", err)
	}
	if wrong {
		if blockedNow {
			return id, numericBlockedNow, nil
		}
		return uuid.Nil, numericWrongPhone, nil
	}
	// Nothing changed: the digits were right, or the code was blocked
	// between the read and the UPDATE (it is never unblocked, so a read
	// now tells which).
	w, err := s.store.Get(ctx, id)
	if err != nil {
		return uuid.Nil, 0, fmt.Errorf("reading a numeric code's block: %w", err)
	}
	if w.NumericBlocked {
		return uuid.Nil, numericBlocked, nil
	}
	return id, numericRight, nil
}

// checkTill refuses a payout the post office's till cannot cover, or one
// past its daily payout limit. One read for the till's balance and the
// limit, and, only when there is a limit, one for what the post office
// paid today. It is a courtesy to the teller before cash is counted; the
// ledger's till flag is the guard at confirm.
func (s *Service) checkTill(ctx context.Context, po string, amount int64) error {
	cash, limit, err := s.store.Till(ctx, po)
	if err != nil {
		return fmt.Errorf("reading till and post office limit: %w", err)
	}
	if cash < amount {
		return softatm.Errorf(softatm.ETillShort, "not enough cash in the till for this code")
	}
	if limit <= 0 {
		return nil
	}
	// Only a post office with a limit pays for the day's sum.
	day, err := s.ledger.BusinessDate(ctx, s.now())
	if err != nil {
		return err
	}
	paid, err := s.store.PaidOn(ctx, po, day)
	if err != nil {
		return fmt.Errorf("reading the post office's payouts today: %w", err)
	}
	if paid+amount > limit {
		return softatm.Errorf(softatm.ELimit, "this post office has reached its daily payout limit")
	}
	return nil
}

// logAbout returns ctx whose log lines (through a softatm.ContextHandler:
// serve's logger) name withdrawal (or deposit) id, so that one transaction
// is followed through the switch's and the bank link's logs: the link knows
// only STAN and RRN.
func logAbout(ctx context.Context, id uuid.UUID) context.Context {
	return softatm.WithLogAttrs(ctx, slog.String("withdrawal", id.String()))
}

// readBackTimeout bounds the read that settles an unknown commit outcome.
const readBackTimeout = 5 * time.Second

// readBack reads withdrawal (or deposit) id after a move reported an
// error whose outcome may be unknown (the connection dropped during
// COMMIT, or the caller gave up while its batch committed): what is
// recorded is what happened. It runs even if ctx is done.
func (s *Service) readBack(ctx context.Context, id uuid.UUID) (Withdrawal, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
	defer cancel()
	return s.store.Get(rctx, id)
}

// Receipt is what the teller prints after paying.
type Receipt struct {
	WithdrawalID uuid.UUID `json:"withdrawal_id"`
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"`
	PaidAt       time.Time `json:"paid_at"`
	PostOffice   string    `json:"post_office"`
	Kiosk        string    `json:"kiosk"`
	Teller       string    `json:"teller"`
	BusinessDate string    `json:"business_date"`
}

// Confirm records that the teller handed the cash over. In one transaction:
// the withdrawal becomes paid, the pending hold is posted, the cash moves
// from in-flight to the till (and the fee, if any, is booked), and a 0220
// advice is queued. Only the teller holding the claim can confirm, so a
// second confirm, from anyone, changes nothing.
func (s *Service) Confirm(ctx context.Context, t Teller, id uuid.UUID) (Receipt, error) {
	now := s.now()
	// The request's idempotency key, bound to the payout in its move: a
	// retry whose idempotency record was lost finds it (paidWith).
	key := idem.KeyFrom(ctx)
	if s.gate != nil {
		if spent, err := s.gate.Spent(ctx, id.String()); err == nil && spent {
			w, err := s.store.Get(ctx, id)
			if rc, ok := paidWith(w, t, key); ok && err == nil {
				return rc, nil
			}
			return Receipt{}, spentError(w, err, now, t)
		}
	}
	// The withdrawal and its bank's fee in one read.
	w, fee, err := s.store.WithFee(ctx, id)
	if err != nil {
		return Receipt{}, err
	}
	if rc, ok := paidWith(w, t, key); ok {
		return rc, nil
	}
	if w.State != StateClaimed || w.ClaimedBy != t.holder() || w.ClaimUntil.Before(now) {
		return Receipt{}, stateError(w, now, t.holder())
	}
	if w.ApprovedAmount != w.Amount {
		// The 0110 was checked against the 0100, so this is a broken
		// invariant, not a bank's answer: pay nothing.
		return Receipt{}, fmt.Errorf("withdrawal %s: approved %d, asked %d: refusing to pay", id, w.ApprovedAmount, w.Amount)
	}
	// The payout's business date is its bank's: the cut-off the bank's
	// settlement file is cut at.
	cut, err := s.cutoffOf(ctx, w.Bank)
	if err != nil {
		return Receipt{}, err
	}
	var current Withdrawal
	crashPoint(CrashBeforeCommit)
	res, err := s.apply(ctx, Move{ID: id, Event: EvPay, At: now, Holder: t.holder(), Cutoff: cut,
		Set: []Col{{"paid_by", t.UserID}, {"paid_kiosk", t.Kiosk}, {"post_office", t.PostOffice},
			{"paid_at", now}, {"business_date", ledger.BusinessDateArg}, {"confirm_key", keyArg(key)}},
		Bank: w.Bank, PostOffice: t.PostOffice, Amount: w.ApprovedAmount, Fee: fee, Currency: w.Currency})
	err = s.late(ctx, err, id, &current)
	if errors.Is(err, errLate) {
		return Receipt{}, stateError(current, now, t.holder())
	}
	if err != nil {
		// The outcome may be unknown (the connection dropped during COMMIT,
		// or the caller gave up while its batch committed). Read it back
		// rather than guess: if this teller's payout is recorded, it happened.
		cur, rerr := s.readBack(ctx, id)
		if rerr != nil || (cur.State != StatePaid && cur.State != StateCompleted) || cur.PaidBy != t.UserID || cur.PaidKiosk != t.Kiosk {
			return Receipt{}, err
		}
		s.log.Warn("confirm reported an error but the payout is recorded; answering with its receipt", "withdrawal", id, "err", err)
		res.BusinessDate = cur.BusinessDate
		now = cur.PaidAt
	}
	crashPoint(CrashAfterCommit)
	s.m.transition(StatePaid)
	s.m.paidAmount.Add(float64(w.Amount))
	if s.gate != nil {
		// Best effort: the database already refuses a second payout.
		if err := s.gate.MarkSpent(ctx, id.String(), time.Until(w.ExpiresAt)+s.cfg.ClockSkew+time.Minute); err != nil {
			s.log.Warn("marking code spent in Redis", "withdrawal", id, "err", err)
		}
		_ = s.gate.Release(ctx, id.String(), t.holder())
	}
	s.wake()
	return Receipt{WithdrawalID: id, Amount: w.Amount, Currency: w.Currency, PaidAt: now, PostOffice: t.PostOffice,
		Kiosk: t.Kiosk, Teller: t.Username, BusinessDate: res.BusinessDate.Format("2006-01-02")}, nil
}

// claimCleared are the columns a claim ends with (release, lapse).
var claimCleared = []Col{{"claimed_by", ""}, {"claimed_kiosk", ""}, {"claim_until", nil}}

// keyArg is an idempotency key as a column value: NULL outside the
// middleware (tests, tools calling the service).
func keyArg(key string) any {
	if key == "" {
		return nil
	}
	return key
}

// paidWith returns the receipt of w when the confirm whose idempotency key
// is key paid it: that confirm's retry, its idempotency record lost
// (switch/idem, "Durability"), is answered as it was the first time. Any
// other confirm of a paid code gets code_already_used.
func paidWith(w Withdrawal, t Teller, key string) (Receipt, bool) {
	if key == "" || w.ConfirmKey != key || (w.State != StatePaid && w.State != StateCompleted) {
		return Receipt{}, false
	}
	return Receipt{WithdrawalID: w.ID, Amount: w.Amount, Currency: w.Currency, PaidAt: w.PaidAt, PostOffice: w.PostOffice,
		Kiosk: w.PaidKiosk, Teller: t.Username, BusinessDate: w.BusinessDate.Format("2006-01-02")}, true
}

// spentError explains a code the fast gate marks spent: paid, or ended
// (cancelled, expired) — the marker does not say which, the row does (w,
// read with err).
func spentError(w Withdrawal, err error, now time.Time, t Teller) error {
	if err != nil || w.State == StateReserved || w.State == StateClaimed {
		// Unreadable, or the marker outlived a state it no longer
		// describes: the database's answer is not at hand, so refuse.
		return softatm.Errorf(softatm.ECodeUsed, "this code has already been used")
	}
	return stateError(w, now, t.holder())
}

// Release gives up the teller's claim (the citizen left, the ID did not match).
func (s *Service) Release(ctx context.Context, t Teller, id uuid.UUID) error {
	now := s.now()
	var current Withdrawal
	_, err := s.apply(ctx, Move{ID: id, Event: EvRelease, At: now, Holder: t.holder(), Set: claimCleared})
	err = s.late(ctx, err, id, &current)
	if errors.Is(err, errLate) {
		return stateError(current, now, t.holder())
	}
	if err != nil {
		return err
	}
	if s.gate != nil {
		_ = s.gate.Release(ctx, id.String(), t.holder())
	}
	return nil
}

// TillDay is a teller's view of their post office's day.
type TillDay struct {
	PostOffice string    `json:"post_office"`
	Count      int64     `json:"count"`
	PaidOut    int64     `json:"paid_out"`
	Cash       int64     `json:"cash"`
	Currency   string    `json:"currency"`
	Payouts    []Receipt `json:"payouts"`
	// Cash in: the deposits the post office took in today (deposit.go);
	// each Receipt's WithdrawalID is the deposit's id.
	DepositCount int64     `json:"deposit_count"`
	CashIn       int64     `json:"cash_in"`
	Deposits     []Receipt `json:"deposits"`
}

// payoutsShownMax bounds the payouts listed on the till page.
const payoutsShownMax = 200

// Till returns today's payouts at the teller's post office and the cash left.
func (s *Service) Till(ctx context.Context, t Teller) (TillDay, error) {
	day, err := s.ledger.BusinessDate(ctx, s.now())
	if err != nil {
		return TillDay{}, err
	}
	a, err := s.ledger.Account(ctx, ledger.TillCode(t.PostOffice))
	if err != nil {
		return TillDay{}, err
	}
	out := TillDay{PostOffice: t.PostOffice, Currency: s.cfg.Currency,
		Cash: a.DebitsPosted - a.CreditsPosted - a.CreditsPending}
	out.Payouts, out.Count, out.PaidOut, err = s.store.Payouts(ctx, t.PostOffice, day, payoutsShownMax)
	if err != nil {
		return out, err
	}
	out.Deposits, out.DepositCount, out.CashIn, err = s.store.CreditedAt(ctx, t.PostOffice, day, payoutsShownMax)
	return out, err
}
