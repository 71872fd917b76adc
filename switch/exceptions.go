package atmswitch

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm"
)

// kindReplyMismatch is an exception that is not a message to send: a bank
// reply that did not match its request (see Service.Create).
const kindReplyMismatch = "reply_mismatch"

// OutboxException is an advice or reversal the bank never accepted: it kept
// failing until MaxAttempts, or the bank answered with a refusal; or a
// reply of the bank that did not match its request (kind reply_mismatch,
// which cannot be requeued). Finance
// sees every one; nothing is dropped silently.
type OutboxException struct {
	ID           uuid.UUID `json:"id"`
	WithdrawalID uuid.UUID `json:"withdrawal_id"`
	Kind         string    `json:"kind"`
	Attempts     int       `json:"attempts"`
	ResponseCode string    `json:"response_code"`
	LastError    string    `json:"last_error"`
	RRN          string    `json:"rrn"`
	Amount       int64     `json:"amount"`
	Bank         string    `json:"bank"`
	CreatedAt    time.Time `json:"created_at"`
	Resolved     bool      `json:"resolved"`
	ResolvedNote string    `json:"resolved_note"`
}

// exceptionsShownMax bounds one listing.
const exceptionsShownMax = 500

// Exceptions lists the outbox exceptions, unresolved first.
func (s *Service) Exceptions(ctx context.Context) ([]OutboxException, error) {
	rows, err := s.pool.Query(ctx, `SELECT o.id, o.withdrawal_id, o.kind, o.attempts, o.response_code, o.last_error,
			w.rrn, w.amount, w.bank_code, o.created_at, o.resolved_note <> '', o.resolved_note
		FROM outbox o JOIN withdrawals w ON w.id = o.withdrawal_id
		WHERE o.state = 'exception' ORDER BY (o.resolved_note <> ''), o.created_at LIMIT $1`, exceptionsShownMax)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutboxException, error) {
		var e OutboxException
		err := row.Scan(&e.ID, &e.WithdrawalID, &e.Kind, &e.Attempts, &e.ResponseCode, &e.LastError,
			&e.RRN, &e.Amount, &e.Bank, &e.CreatedAt, &e.Resolved, &e.ResolvedNote)
		return e, err
	})
}

// ResolveException records who looked at an exception and what they did.
func (s *Service) ResolveException(ctx context.Context, id uuid.UUID, by, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return softatm.Errorf(softatm.EInvalid, "a reason is required")
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET resolved_note = $2 WHERE id = $1 AND state = 'exception'`,
			id, by+": "+reason)
		if err == nil && tag.RowsAffected() == 0 {
			return softatm.Errorf(softatm.ENotFound, "exception not found")
		}
		return err
	})
}

// Requeue sends an exception again (after the bank fixed its side, say), as
// a repeat (0221/0421), with a fresh budget of attempts less the one spent.
// The message keeps its place in the withdrawal's order.
func (s *Service) Requeue(ctx context.Context, id uuid.UUID) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET state = 'pending', attempts = 1, next_attempt_at = $2
			WHERE id = $1 AND state = 'exception' AND kind IN ('advice','reversal')`, id, s.now())
		if err == nil && tag.RowsAffected() == 0 {
			return softatm.Errorf(softatm.ENotFound, "exception not found")
		}
		return err
	})
}
