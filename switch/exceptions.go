package atmswitch

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
)

// kindReplyMismatch is an exception that is not a message to send: a bank
// reply that did not match its request (see Service.Create).
const kindReplyMismatch = "reply_mismatch"

// kindCallback is a callback to a bank app that was given up (callbacks.go);
// requeueing it delivers it again with a fresh budget of attempts.
const kindCallback = "callback"

// OutboxException is an advice or reversal the bank never accepted: it kept
// failing until MaxAttempts, or the bank answered with a refusal; or a
// reply of the bank that did not match its request (kind reply_mismatch,
// which cannot be requeued); or a callback to a bank app that was never
// accepted (kind callback; ResponseCode is the receiver's last HTTP
// status). Finance
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
	return s.store.Exceptions(ctx, exceptionsShownMax)
}

// ResolveException records who looked at an exception and what they did.
func (s *Service) ResolveException(ctx context.Context, id uuid.UUID, by, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return softatm.Errorf(softatm.EInvalid, "a reason is required")
	}
	return s.store.ResolveException(ctx, id, by+": "+reason)
}

// Requeue sends an exception again (after the bank fixed its side, say), as
// a repeat (0221/0421), with a fresh budget of attempts less the one spent.
// The message keeps its place in the withdrawal's order. A mismatched reply
// is no message and cannot be requeued.
func (s *Service) Requeue(ctx context.Context, id uuid.UUID) error {
	return s.store.Requeue(ctx, id, s.now())
}
