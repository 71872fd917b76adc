package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const withdrawalColumns = `id, bank_code, account_number, holder_name_masked, amount, currency, state,
	terminal_id, stan, rrn, transmitted_at, approval_code, response_code,
	key_id, qr_payload, COALESCE(expires_at, 'epoch'),
	claimed_by, claimed_kiosk, COALESCE(claim_until, 'epoch'),
	paid_by, paid_kiosk, post_office, COALESCE(paid_at, 'epoch'), COALESCE(business_date, 'epoch'),
	created_at, updated_at, numeric_blocked`

func scanWithdrawal(row pgx.Row) (Withdrawal, error) {
	var w Withdrawal
	err := row.Scan(scanTargets(&w)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return Withdrawal{}, softatm.Errorf(softatm.ENotFound, "withdrawal not found")
	}
	return w, err
}

// readRetriesMax bounds the re-runs of a lone read (outside a transaction)
// that PostgreSQL aborted with 40001: the server runs SERIALIZABLE by
// default, and under load even a read-only statement can be the one chosen
// to break a dependency cycle. Retrying it is safe: it wrote nothing.
const readRetriesMax = 5

// retryReads is a querier over the pool whose rows re-run their query on a
// serialization failure or a lost connection (the pool hands out another).
type retryReads struct{ pool *pgxpool.Pool }

func (r retryReads) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return retryRow{ctx: ctx, pool: r.pool, sql: sql, args: args}
}

type retryRow struct {
	ctx  context.Context
	pool *pgxpool.Pool
	sql  string
	args []any
}

func (r retryRow) Scan(dest ...any) error {
	var err error
	for range readRetriesMax + 1 {
		err = r.pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
		if !(ledger.IsRetryable(err) || ledger.IsConnectionLost(err)) || r.ctx.Err() != nil {
			return err
		}
	}
	return err
}

func getWithdrawal(ctx context.Context, q querier, id uuid.UUID) (Withdrawal, error) {
	return scanWithdrawal(q.QueryRow(ctx, `SELECT `+withdrawalColumns+` FROM withdrawals WHERE id = $1`, id))
}

// moveStmt is a conditional state change: an UPDATE of one withdrawal
// whose WHERE names the state it expects. It must change the row; when it
// changes none the unit is refused with ledger.ErrUnchanged, for late.
func moveStmt(sql string, args ...any) *ledger.Stmt {
	return &ledger.Stmt{SQL: sql, Args: args, MustChange: true}
}

// moveReturningStmt is moveStmt whose statement also reads the moved
// withdrawal into *w.
func moveReturningStmt(w *Withdrawal, sql string, args ...any) *ledger.Stmt {
	return &ledger.Stmt{SQL: sql + ` RETURNING ` + withdrawalColumns, Args: args, MustChange: true,
		Row: func(r pgx.Row) error { return r.Scan(scanTargets(w)...) }}
}

// moveQueueStmt is moveStmt with a message to the bank (kind "advice" or
// "reversal") queued in the outbox by the same statement, only if the
// withdrawal moved. seq keeps the messages of one withdrawal in order.
func moveQueueStmt(kind string, now time.Time, sql string, args ...any) *ledger.Stmt {
	n := len(args)
	q := fmt.Sprintf(`WITH moved AS (%s RETURNING id)
		INSERT INTO outbox (id, withdrawal_id, seq, kind, state, next_attempt_at, created_at)
		SELECT $%d, moved.id, COALESCE((SELECT MAX(seq) FROM outbox WHERE withdrawal_id = moved.id), 0) + 1,
			$%d, 'pending', $%d, $%d FROM moved`, sql, n+1, n+2, n+3, n+3)
	return moveStmt(q, append(slices.Clip(args), uuid.New(), kind, now)...)
}

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
	w, rerr := getWithdrawal(ctx, s.reads, id)
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
		return softatm.Errorf(softatm.EConflict, "this code is already claimed by you")
	case StateReserved:
		if !w.ExpiresAt.IsZero() && now.After(w.ExpiresAt) {
			return softatm.Errorf(softatm.ECodeExpired, "this code has expired")
		}
		return softatm.Errorf(softatm.EConflict, "scan the code before confirming")
	}
	return softatm.Errorf(softatm.EConflict, "withdrawal is %s", w.State)
}
