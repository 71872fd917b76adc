package atmswitch

import (
	"context"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
)

// PaidReceipt is everything a receipt prints about a paid withdrawal, read
// back from the record: the kiosk prints it after a payout and again from
// the teller's day (a reprint), and both print the same thing.
//
// The receipt number is the withdrawal's RRN, which the bank's settlement
// file carries too; the verification code is the bank's approval code.
// Both can be checked with the bank without trusting the paper. The holder's
// name is the masked one: the full name is only for the ID check.
type PaidReceipt struct {
	Withdrawal        Withdrawal
	BankName          string
	PostOfficeName    string
	PostOfficeAddress string
	TellerName        string // the username of the teller who paid
}

// PaidReceipt returns the receipt of a withdrawal paid at the teller's
// post office. Any other (not paid, or paid elsewhere) is not found: a
// teller cannot read another office's payouts by guessing ids.
func (s *Service) PaidReceipt(ctx context.Context, t Teller, id uuid.UUID) (PaidReceipt, error) {
	r, err := s.store.PaidReceipt(ctx, id)
	if err != nil {
		return PaidReceipt{}, err
	}
	w := r.Withdrawal
	if (w.State != StatePaid && w.State != StateCompleted) || w.PostOffice == "" || w.PostOffice != t.PostOffice {
		return PaidReceipt{}, softatm.Errorf(softatm.ENotFound, "no payout of this post office has this id")
	}
	// What a receipt must not carry, it does not get.
	r.Withdrawal.HolderName, r.Withdrawal.QRPayload = "", ""
	return r, nil
}

func (p *pgStore) PaidReceipt(ctx context.Context, id uuid.UUID) (PaidReceipt, error) {
	var r PaidReceipt
	err := p.reads.QueryRow(ctx, `SELECT `+withdrawalColumns+`,
		COALESCE((SELECT name FROM banks b WHERE b.code = withdrawals.bank_code), ''),
		COALESCE((SELECT name FROM post_offices o WHERE o.code = withdrawals.post_office), ''),
		COALESCE((SELECT location FROM post_offices o WHERE o.code = withdrawals.post_office), ''),
		COALESCE((SELECT username FROM users u WHERE u.id::text = withdrawals.paid_by), '')
		FROM withdrawals WHERE id = $1`, id).Scan(scanTargets(&r.Withdrawal, &r.BankName, &r.PostOfficeName,
		&r.PostOfficeAddress, &r.TellerName)...)
	r.Withdrawal, err = p.opened(r.Withdrawal, notFound(err))
	return r, err
}
