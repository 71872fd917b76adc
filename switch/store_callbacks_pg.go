package atmswitch

import (
	"context"
	"github.com/softatm/softatm/iso"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm/ledger"
)

// The callback queue's SQL (callbacks.go), beside the outbox's. Writes go
// through the ledger's committer like every other write of the switch.

func (p *pgStore) LeaseCallbacks(ctx context.Context, owner string, now, until time.Time, n int) ([]callback, error) {
	var out []callback
	// A statement unit read by Rows, as the outbox's lease (store_pg.go).
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `WITH leased AS (
				UPDATE callbacks SET lease_owner = $1, lease_until = $2
				WHERE id IN (
					SELECT c.id FROM callbacks c
					WHERE c.delivery = 'pending' AND c.next_attempt_at <= $3
					  AND (c.lease_until IS NULL OR c.lease_until < $3)
					  AND NOT EXISTS (SELECT 1 FROM callbacks e WHERE e.withdrawal_id = c.withdrawal_id
					                  AND e.seq < c.seq AND e.delivery = 'pending')
					ORDER BY c.next_attempt_at LIMIT $4)
				RETURNING id, withdrawal_id, client_id, seq, event, state, occurred_at, attempts)
			SELECT l.id, l.withdrawal_id, l.client_id, l.seq, l.event, l.state, l.occurred_at, l.attempts,
				b.callback_url, b.callback_secret, w.bank_code, w.account_number, w.amount, w.currency, w.kind
			FROM leased l JOIN bank_clients b ON b.id = l.client_id JOIN withdrawals w ON w.id = l.withdrawal_id`,
		Args: []any{owner, until, now, n},
		Rows: func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (callback, error) {
				var (
					cb      callback
					account string
					kind    string
				)
				e, w := &cb.event, &cb.event.Withdrawal
				err := row.Scan(&e.ID, &w.ID, &cb.client, &e.Seq, (*string)(&e.Event), (*string)(&w.State), &e.OccurredAt, &cb.attempts,
					&cb.url, &cb.secret, &w.Bank, &account, &w.Amount, &w.Currency, &kind)
				w.Account = iso.Mask(account)
				// A deposit's events say so: "deposit.credited", "deposit.reversed".
				prefix := "withdrawal."
				if Kind(kind) == KindDeposit {
					prefix = "deposit."
				}
				e.Type = prefix + string(w.State)
				if e.Event == EventReversed {
					e.Type = prefix + string(EventReversed)
				}
				return cb, err
			})
			return err
		}})
	return out, err
}

func (p *pgStore) CallbackDelivered(ctx context.Context, id uuid.UUID, status int, now time.Time) error {
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `UPDATE callbacks SET delivery = 'done', attempts = attempts + 1,
			last_status = $2, delivered_at = $3, lease_owner = '', lease_until = NULL WHERE id = $1 AND delivery = 'pending'`,
		Args: []any{id, status, now}})
	return err
}

func (p *pgStore) CallbackRetry(ctx context.Context, id uuid.UUID, state string, attempts, status int, next time.Time, cause string) error {
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `UPDATE callbacks SET delivery = $2, attempts = $3, last_status = $4,
			next_attempt_at = $5, last_error = $6, lease_owner = '', lease_until = NULL WHERE id = $1 AND delivery = 'pending'`,
		Args: []any{id, state, attempts, status, next, cause}})
	return err
}

func (p *pgStore) CallbacksPending(ctx context.Context) (int64, error) {
	var n int64
	err := p.reads.QueryRow(ctx, `SELECT COUNT(*) FROM callbacks WHERE delivery = 'pending'`).Scan(&n)
	return n, err
}
