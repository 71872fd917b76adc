package atmswitch

import (
	"context"
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
	l := Limits{Currency: s.cfg.Currency, AmountMin: s.cfg.AmountMin, AmountMax: s.cfg.AmountMax,
		AmountMultiple: s.cfg.NoteUnit, AccountDailyMax: s.cfg.AccountDailyMax}
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
	l.Account, l.AccountDailyUsed = maskAccount(account), &used
	if s.cfg.AccountDailyMax > 0 {
		left := max(s.cfg.AccountDailyMax-used, 0)
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
