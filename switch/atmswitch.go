// Package atmswitch owns the withdrawal lifecycle: a bank's app asks for
// cash, the switch reserves it at the bank over ISO 8583, issues a signed
// one-time code, a teller claims and pays it, and the switch completes or
// reverses the hold at the bank through a store-and-forward outbox.
//
// The database is the record. Every state change is one conditional UPDATE
// (WHERE id = $1 AND state = $expected) inside a SERIALIZABLE transaction run
// through ledger.RunTx or ledger.Commit; Redis (switch/replay) is only the
// fast gate in front of it, so with Redis flushed or down no code pays twice.
// Nothing outside the database happens inside a retried transaction: messages
// to the bank are outbox rows written in the same transaction as the state
// change, and the Outbox worker sends them.
//
// Decisions where DESIGN.md is silent:
//   - The withdrawal row (with its STAN, RRN and transmission time) is
//     committed before the 0100 leaves, so a crash while waiting for the 0110
//     is found by the sweeper and reversed: no hold is ever forgotten.
//   - Every 0100 without an approval in time is followed by a 0420, even when
//     the link was down before sending; the issuer answers a reversal of an
//     unknown request with 00, and a spare reversal costs nothing.
//   - A 0110 that arrives after the withdrawal left 'requested' is ignored:
//     the conditional UPDATE finds no row, and the reversal is already queued.
//   - With Redis down, QR scans fall back to the database alone (slower, just
//     as safe); numeric codes are refused, because their per-counter failure
//     caps live in Redis and guessing must stay capped.
//   - Numeric entry is capped per kiosk, per teller and per post office (in
//     Redis, fixed windows) and per code (on the withdrawal's row, for
//     good); there is no switch-wide cap, only a metric and an alert. See
//     Service.identify.
//
// This package may import ledger, ledger/recon (ReconLines implements its
// Lines), iso, switch/* and the root softatm package; it must not import
// teller (imports_test.go checks both).
package atmswitch

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/replay"
)

// State is a withdrawal's place in its lifecycle.
type State string

// The lifecycle; see DESIGN.md.
const (
	StateRequested State = "requested" // 0100 sent or about to be
	StateReserved  State = "reserved"  // hold approved, code issued
	StateDeclined  State = "declined"  // the bank said no
	StateFailed    State = "failed"    // no usable 0110; reversal queued
	StateClaimed   State = "claimed"   // a teller holds the code
	StatePaid      State = "paid"      // cash handed over; ledger posted; 0220 queued
	StateCompleted State = "completed" // 0230 received
	StateCancelled State = "cancelled" // the citizen cancelled; reversal queued
	StateExpired   State = "expired"   // the code's TTL passed; reversal queued
)

// Withdrawal is one cash-out, as the database records it.
type Withdrawal struct {
	// Kind is the record's lifecycle: a withdrawal's, or a deposit's (the
	// same record serves both; see lifecycle.go). Empty: a withdrawal.
	Kind             Kind
	ID               uuid.UUID
	Bank             string
	Account          string // full account number: never log it, see iso.Mask
	HolderNameMasked string
	// HolderName is the holder's full name as the bank holds it, stored
	// sealed: only the teller who claimed the code sees it (teller's scan
	// answer), to check the citizen's ID card. Never log it, never put it
	// in a View or a code. "" when unknown (older rows, a store without
	// the names key).
	HolderName string
	Amount     int64
	Currency   string
	State      State

	TerminalID    string
	STAN          string
	RRN           string
	TransmittedAt time.Time
	ApprovalCode  string
	// ApprovedAmount is field 4 of the approving 0110: checked equal to
	// Amount on arrival, and what a payout posts.
	ApprovedAmount int64
	ResponseCode   string

	KeyID     string
	QRPayload string
	ExpiresAt time.Time
	// NumericBlocked: too many wrong phone digits were typed for this code;
	// only its QR code pays now.
	NumericBlocked bool

	ClaimedBy    string
	ClaimedKiosk string
	ClaimUntil   time.Time
	ConfirmKey   string // the idempotency key (scope/key) of the confirm that paid it; "" if none
	PaidBy       string
	PaidKiosk    string
	PostOffice   string
	// PaidAt and BusinessDate are, for a deposit, when and on which
	// business day the bank credited it (columns credited_at, credit_date).
	PaidAt       time.Time
	BusinessDate time.Time

	ClientKey string // the create's idempotency key (scope/key), bound with the first row; not read back
	Client    string // the bank client whose create made it: its callbacks go there; not read back

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Bank is the ISO 8583 link to the issuer; *iso.Client implements it.
type Bank interface {
	NextSTAN() string
	Authorize(ctx context.Context, r iso.AuthRequest) (iso.AuthResponse, error)
	Advise(ctx context.Context, r iso.AdviceRequest) (iso.AdviceResponse, error)
	Reverse(ctx context.Context, r iso.AdviceRequest) (iso.AdviceResponse, error)
	Up() bool
}

// Codes signs and verifies withdrawal codes; *code.Keyring implements it.
type Codes interface {
	Sign(ctx context.Context, p code.Payload) (string, error)
	Verify(ctx context.Context, s string) (code.Payload, error)
}

// Gate is the Redis fast gate; *replay.Guard implements it. Every method may
// fail with softatm.EUnavailable when Redis is down.
type Gate interface {
	Claim(ctx context.Context, withdrawalID, holder string, ttl time.Duration) (ok bool, currentHolder string, err error)
	Release(ctx context.Context, withdrawalID, holder string) error
	MarkSpent(ctx context.Context, withdrawalID string, ttl time.Duration) error
	Spent(ctx context.Context, withdrawalID string) (bool, error)
	Allow(ctx context.Context, key string, limit int, window time.Duration) (allowed bool, remaining int, err error)
	TakeTry(ctx context.Context, caps []replay.Cap, window time.Duration) (replay.Tries, error)
	GiveBackTry(ctx context.Context, caps []replay.Cap) error
	Fail(ctx context.Context, key string, window time.Duration) (count int, err error)
	Failures(ctx context.Context, key string) (int, error)
	Ping(ctx context.Context) error
}
