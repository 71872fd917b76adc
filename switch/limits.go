package atmswitch

import (
	"context"
	"fmt"
	"github.com/softatm/softatm/iso"
	"time"

	"github.com/softatm/softatm"
)

// What a bank's app may ask before it acts: the limits that apply to a
// create (GET /v1/limits), and an account's active codes (GET
// /v1/withdrawals?account=...&state=active), so that the app can explain a
// refusal before it is made. Both answer only for the caller's own bank's
// accounts, exactly as Create does: another bank's account, or one in no
// bank's range, is refused with EAccountNotOfBank.

// activeListMax bounds one listing of an account's active codes. An
// account has few: each holds money, and the daily maximum caps them.
const activeListMax = 100

// ActiveStates are the states of a code that can still be paid: reserved
// (until it expires) or claimed by a teller.
var ActiveStates = []State{StateReserved, StateClaimed}

// Limits are the rules a create is held to, as the switch applies them.
type Limits struct {
	Currency        string `json:"currency"`
	AmountMin       int64  `json:"amount_min"`
	AmountMax       int64  `json:"amount_max"`
	AmountMultiple  int64  `json:"amount_multiple"`
	AccountDailyMax int64  `json:"account_daily_max"` // over any 24 hours; 0: no limit of the switch's (the bank's own still applies)
	// For the account asked about, if any: what it withdrew (or holds) in
	// the last 24 hours, and what is left of AccountDailyMax (absent when
	// there is no such limit).
	Account               string `json:"account,omitempty"` // masked
	AccountDailyUsed      *int64 `json:"account_daily_used,omitempty"`
	AccountDailyRemaining *int64 `json:"account_daily_remaining,omitempty"`
}

// Limits returns the limits a create by bank's client is held to, and,
// when account is not "", that account's use of the daily maximum (the
// account must be one of bank's).
func (s *Service) Limits(ctx context.Context, bank, account string) (Limits, error) {
	l, err := s.limitsOf(ctx, bank)
	if err != nil {
		return Limits{}, err
	}
	if account == "" {
		return l, nil
	}
	if err := s.ownAccount(ctx, bank, account); err != nil {
		return Limits{}, err
	}
	used, err := s.store.AccountUsed(ctx, bank, account, s.now().Add(-24*time.Hour))
	if err != nil {
		return Limits{}, err
	}
	l.Account, l.AccountDailyUsed = iso.Mask(account), &used
	if l.AccountDailyMax > 0 {
		left := max(l.AccountDailyMax-used, 0)
		l.AccountDailyRemaining = &left
	}
	return l, nil
}

// ActiveCodes lists an account's codes that can still be paid, newest
// first: reserved and not expired, or claimed. The account must be one of
// bank's.
func (s *Service) ActiveCodes(ctx context.Context, bank, account string) ([]Withdrawal, error) {
	if err := s.ownAccount(ctx, bank, account); err != nil {
		return nil, err
	}
	return s.store.ActiveByAccount(ctx, bank, account, s.now(), activeListMax)
}

// ownAccount refuses an account that is malformed or not bank's.
func (s *Service) ownAccount(ctx context.Context, bank, account string) error {
	if !accountRe.MatchString(account) {
		return softatm.Errorf(softatm.EInvalid, "account must be 6 to 28 digits")
	}
	owner, err := s.bankOf(ctx, account)
	if err != nil {
		return err
	}
	if owner != bank {
		return softatm.Errorf(softatm.EAccountNotOfBank, "this account is not one of your bank's")
	}
	return nil
}

// BankLimits are a bank's own limits (the banks table); a nil field takes
// the switch's configured default. AccountDailyMax 0 means no daily limit
// of the switch's for that bank's accounts.
type BankLimits struct {
	AmountMin       *int64
	AmountMax       *int64
	AmountMultiple  *int64
	AccountDailyMax *int64
}

// CheckBankLimits refuses limits that cannot work: a minimum, maximum or
// multiple that is not positive, a maximum below the minimum, a negative
// daily maximum, or a multiple the post offices cannot pay (noteUnit, the
// smallest note, must divide it).
func CheckBankLimits(l BankLimits, noteUnit int64) error {
	for name, v := range map[string]*int64{"minimum": l.AmountMin, "maximum": l.AmountMax, "multiple": l.AmountMultiple} {
		if v != nil && *v <= 0 {
			return softatm.Errorf(softatm.EInvalid, "the %s amount must be positive", name)
		}
	}
	if l.AmountMin != nil && l.AmountMax != nil && *l.AmountMax < *l.AmountMin {
		return softatm.Errorf(softatm.EInvalid, "the maximum amount is below the minimum")
	}
	if l.AmountMultiple != nil && noteUnit > 0 && *l.AmountMultiple%noteUnit != 0 {
		return softatm.Errorf(softatm.EInvalid, "the multiple must be a multiple of %d, the smallest note a post office pays", noteUnit)
	}
	if l.AccountDailyMax != nil && *l.AccountDailyMax < 0 {
		return softatm.Errorf(softatm.EInvalid, "the daily maximum must not be negative")
	}
	return nil
}

// limitsOf returns the limits a create by bank's client is held to: the
// bank's own where it has them, the configuration's elsewhere.
func (s *Service) limitsOf(ctx context.Context, bank string) (Limits, error) {
	// The banks' own limits are read again every bankRangesRefresh: an
	// edit by `softatm admin bank` is in force on every running instance
	// within it, as a range edit is.
	byBank, err := s.limits.get(s.now(), bankRangesRefresh, func() (map[string]BankLimits, error) {
		all, err := s.store.BankLimits(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the banks' limits: %w", err)
		}
		return all, nil
	})
	if err != nil {
		return Limits{}, err
	}
	own := byBank[bank]
	l := Limits{Currency: s.cfg.Currency, AmountMin: s.cfg.AmountMin, AmountMax: s.cfg.AmountMax,
		AmountMultiple: s.cfg.NoteUnit, AccountDailyMax: s.cfg.AccountDailyMax}
	for _, o := range []struct {
		own *int64
		to  *int64
	}{{own.AmountMin, &l.AmountMin}, {own.AmountMax, &l.AmountMax}, {own.AmountMultiple, &l.AmountMultiple},
		{own.AccountDailyMax, &l.AccountDailyMax}} {
		if o.own != nil {
			*o.to = *o.own
		}
	}
	// A multiple the post offices cannot pay is never applied, whatever
	// the table says (CheckBankLimits refuses it on the way in): the
	// smallest amount both allow is their least common multiple.
	if l.AmountMultiple <= 0 {
		l.AmountMultiple = s.cfg.NoteUnit
	}
	if s.cfg.NoteUnit > 0 && l.AmountMultiple%s.cfg.NoteUnit != 0 {
		l.AmountMultiple = l.AmountMultiple / gcd(l.AmountMultiple, s.cfg.NoteUnit) * s.cfg.NoteUnit
	}
	return l, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
