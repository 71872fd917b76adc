package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/code"
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
			return Withdrawal{}, softatm.Errorf(softatm.ECodeUsed, "this code has already been used")
		}
		ok, _, err := s.gate.Claim(ctx, id.String(), t.holder(), s.cfg.ClaimTTL)
		switch {
		case err != nil:
			s.m.redisFallback.Inc()
			s.log.Warn("replay guard unavailable; claiming in the database only", "err", err)
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
	if s.gate == nil {
		return uuid.Nil, softatm.Errorf(softatm.EUnavailable, "numeric codes are unavailable; scan the QR code")
	}
	// Guessing is capped per kiosk, per teller and in total. Without Redis
	// the caps cannot be enforced, so numeric codes are refused.
	keys := []struct {
		key   string
		limit int
	}{
		{"numeric:kiosk:" + t.Kiosk, s.cfg.NumericFailMax},
		{"numeric:teller:" + t.UserID, s.cfg.NumericFailMax},
		{"numeric:all", s.cfg.NumericGlobalMax},
	}
	for _, k := range keys {
		n, err := s.gate.Failures(ctx, k.key)
		if err != nil {
			return uuid.Nil, softatm.Wrap(softatm.EUnavailable, "numeric codes are unavailable; scan the QR code", err)
		}
		if n >= k.limit {
			return uuid.Nil, softatm.Errorf(softatm.ELocked, "too many wrong numeric codes; wait %s or scan the QR code", s.cfg.NumericFailWindow)
		}
	}
	failed := func() (uuid.UUID, error) {
		for _, k := range keys {
			if _, err := s.gate.Fail(ctx, k.key, s.cfg.NumericFailWindow); err != nil {
				return uuid.Nil, softatm.Wrap(softatm.EUnavailable, "numeric codes are unavailable; scan the QR code", err)
			}
		}
		return uuid.Nil, softatm.Errorf(softatm.ECodeInvalid, "the numeric code or phone digits are wrong")
	}
	numeric := code.NormalizeNumeric(r.Numeric)
	if !code.ValidNumeric(numeric) || !last4Re.MatchString(r.PhoneLast4) {
		return failed()
	}
	id, phone, err := s.store.NumericHandle(ctx, code.HashNumeric(s.cfg.Secret, numeric))
	if softatm.ErrorCode(err) == softatm.ENotFound {
		return failed()
	}
	if err != nil {
		return uuid.Nil, err
	}
	if string(phone) != string(code.HashPhone(s.cfg.Secret, id, r.PhoneLast4)) {
		return failed()
	}
	return id, nil
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

// readBackTimeout bounds the read that settles an unknown commit outcome.
const readBackTimeout = 5 * time.Second

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
	if s.gate != nil {
		if spent, err := s.gate.Spent(ctx, id.String()); err == nil && spent {
			return Receipt{}, softatm.Errorf(softatm.ECodeUsed, "this code has already been paid")
		}
	}
	// The withdrawal and its bank's fee in one read.
	w, fee, err := s.store.WithFee(ctx, id)
	if err != nil {
		return Receipt{}, err
	}
	if w.State != StateClaimed || w.ClaimedBy != t.holder() || w.ClaimUntil.Before(now) {
		return Receipt{}, stateError(w, now, t.holder())
	}
	if w.ApprovedAmount != w.Amount {
		// The 0110 was checked against the 0100, so this is a broken
		// invariant, not a bank's answer: pay nothing.
		return Receipt{}, fmt.Errorf("withdrawal %s: approved %d, asked %d: refusing to pay", id, w.ApprovedAmount, w.Amount)
	}
	var current Withdrawal
	crashPoint(CrashBeforeCommit)
	res, err := s.apply(ctx, Move{ID: id, Event: EvPay, At: now, Holder: t.holder(),
		Set: []Col{{"paid_by", t.UserID}, {"paid_kiosk", t.Kiosk}, {"post_office", t.PostOffice},
			{"paid_at", now}, {"business_date", ledger.BusinessDateArg}},
		Bank: w.Bank, PostOffice: t.PostOffice, Amount: w.ApprovedAmount, Fee: fee, Currency: w.Currency})
	err = s.late(ctx, err, id, &current)
	if errors.Is(err, errLate) {
		return Receipt{}, stateError(current, now, t.holder())
	}
	if err != nil {
		// The outcome may be unknown (the connection dropped during COMMIT,
		// or the caller gave up while its batch committed). Read it back
		// rather than guess: if this teller's payout is recorded, it happened.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
		cur, rerr := s.store.Get(rctx, id)
		cancel()
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
	return out, err
}
