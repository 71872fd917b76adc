package atmswitch

import (
	"context"
	"errors"
)

// What a bank's app needs to explain the switch to a citizen: the reason
// of a refusal, and the codes an account still has open (the limits before
// a request are in limits.go).

// DeclineCode returns the ISO 8583 response code of a bank's refusal that
// Create returned ("51": not enough money, "05": do not honour, "61": over
// the bank's limit...), or "" when err is no bank's refusal.
func DeclineCode(err error) string {
	for rc, e := range declineErrors {
		if errors.Is(err, e) {
			return rc
		}
	}
	return ""
}

// liveMax bounds the live codes listed for one account; an account has one
// or two in practice.
const liveMax = 10

// Live returns the account's codes that are still live (being asked,
// ready to collect, at a counter), newest first.
func (s *Service) Live(ctx context.Context, bank, account string) ([]Withdrawal, error) {
	return s.store.Live(ctx, bank, account)
}

func (p *pgStore) Live(ctx context.Context, bank, account string) ([]Withdrawal, error) {
	return p.list(ctx, `SELECT `+withdrawalColumns+` FROM withdrawals
		WHERE bank_code = $1 AND account_number = $2 AND state IN ($3, $4, $5)
		ORDER BY created_at DESC LIMIT $6`,
		bank, account, string(StateRequested), string(StateReserved), string(StateClaimed), liveMax)
}
