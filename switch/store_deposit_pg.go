package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// What the deposit lifecycle (deposit.go) reads and writes besides Apply,
// on PostgreSQL. Deposits are rows of withdrawals whose kind is 'deposit'
// (migration 00036); every query here names the kind.

// sealedID is a citizen's ID number, sealed with the ids box (purpose "id
// number", bound to the deposit's id) on its way into the row.
type sealedID string

// DepositStore is the part of Store the deposit lifecycle adds.
type DepositStore interface {
	// InsertDeposit records a new deposit in state deposit_issued: its
	// code (sealed payload, numeric and phone hashes) for an app's, none
	// for a walk-in's; errRRNTaken when another record holds its RRN,
	// errKeyBound when another is bound to its key, errNumericTaken when
	// another has its numeric code.
	InsertDeposit(ctx context.Context, w Withdrawal, numericHash, phoneHash []byte) error
	// DepositedSince sums an account's deposits credited or being credited
	// since (the 24-hour limit).
	DepositedSince(ctx context.Context, bank, account string, since time.Time) (int64, error)
	// DepositedOn sums an account's deposits credited or being credited
	// on a business day (the large-cash threshold).
	DepositedOn(ctx context.Context, bank, account string, day time.Time) (int64, error)
	// TillCap returns the cash a post office's till holds, counting the
	// deposits being credited there, and its cash cap (0: none).
	TillCap(ctx context.Context, postOffice string) (cash, cashCap int64, err error)
	// DueDeposits lists up to n deposits the sweeper must move by ev:
	// codes expired before, claims lapsed before, credits sent before.
	DueDeposits(ctx context.Context, ev Event, before time.Time, n int) ([]uuid.UUID, error)
	// LargeCash lists the credited large-cash deposits of business days
	// from..to, with the ID numbers the tellers typed (opened).
	LargeCash(ctx context.Context, from, to time.Time) ([]LargeCashDeposit, error)
	// CreditedAt lists up to n deposits a post office took in on a
	// business day, newest first, with their count and sum.
	CreditedAt(ctx context.Context, postOffice string, day time.Time, n int) ([]Receipt, int64, int64, error)
}

func (p *pgStore) InsertDeposit(ctx context.Context, w Withdrawal, numericHash, phoneHash []byte) error {
	qr, name := w.QRPayload, ""
	if p.box != nil && qr != "" {
		qr = p.box.SealText(qr, w.ID.String())
	}
	if w.HolderName != "" {
		if p.names == nil {
			return errNoNameBox
		}
		name = p.names.SealText(w.HolderName, w.ID.String())
	}
	_, err := p.ledger.Direct(ctx, &ledger.Stmt{SQL: `INSERT INTO withdrawals (id, kind, bank_code, account_number,
			holder_name_masked, holder_name_sealed, amount, currency, state, terminal_id, stan, rrn, transmitted_at,
			key_id, qr_payload, numeric_hash, phone_last4_hash, expires_at, created_at, updated_at, client_key, client_id)
			VALUES ($1, 'deposit', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $12, $12,
				NULLIF($18, ''), $19)`,
		Args: []any{w.ID, w.Bank, w.Account, w.HolderNameMasked, name, w.Amount, w.Currency, string(StateDepIssued),
			w.TerminalID, w.STAN, w.RRN, w.CreatedAt, w.KeyID, qr, numericHash, phoneHash, w.ExpiresAt, w.ClientKey, w.Client}})
	switch {
	case isUniqueViolation(err, "withdrawals_rrn_key"):
		return errRRNTaken
	case isUniqueViolation(err, "withdrawals_client_key_key"):
		return errKeyBound
	case isUniqueViolation(err, "withdrawals_numeric_hash_key"):
		return errNumericTaken
	}
	return err
}

func (p *pgStore) DepositedSince(ctx context.Context, bank, account string, since time.Time) (int64, error) {
	var sum int64
	err := p.reads.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM withdrawals
		WHERE kind = 'deposit' AND bank_code = $1 AND account_number = $2 AND updated_at > $3 AND state = ANY($4)`,
		bank, account, since, stateTexts([]State{StateDepCrediting, StateDepCredited})).Scan(&sum)
	return sum, err
}

func (p *pgStore) DepositedOn(ctx context.Context, bank, account string, day time.Time) (int64, error) {
	var sum int64
	// A deposit being credited has no credit date yet: it counts for today.
	err := p.reads.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM withdrawals
		WHERE kind = 'deposit' AND bank_code = $1 AND account_number = $2
		  AND ((state = $3 AND credit_date = $4) OR state = $5)`,
		bank, account, string(StateDepCredited), day, string(StateDepCrediting)).Scan(&sum)
	return sum, err
}

// TillCap finds the deposits being credited among the live rows (due_at,
// DueStates): state alone has no index.
func (p *pgStore) TillCap(ctx context.Context, po string) (cash, cashCap int64, err error) {
	err = p.reads.QueryRow(ctx, `SELECT a.debits_posted - a.credits_posted - a.credits_pending
			+ (SELECT COALESCE(SUM(d.amount), 0) FROM withdrawals d WHERE d.due_at IS NOT NULL AND d.post_office = $1 AND d.state = $3), p.cash_cap
		FROM post_offices p JOIN accounts a ON a.code = $2 WHERE p.code = $1`,
		po, ledger.TillCode(po), string(StateDepCrediting)).Scan(&cash, &cashCap)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, softatm.Errorf(softatm.ENotFound, "post office %s has no till", po)
	}
	return cash, cashCap, err
}

// depositDueSQL is the sweeper's query per event for deposits: dueSQL's.
// A credit in flight is timed from its last move (the teller's confirm,
// which due_at holds while it is crediting), not from the code's creation
// hours before.
var depositDueSQL = dueSQL

func (p *pgStore) DueDeposits(ctx context.Context, ev Event, before time.Time, n int) ([]uuid.UUID, error) {
	q, ok := depositDueSQL[ev]
	if !ok {
		return nil, fmt.Errorf("no deposit sweep for event %s", ev)
	}
	rows, err := p.pool.Query(ctx, q, string(rowsOfKind(KindDeposit, ev)[0].From), before, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// LargeCashDeposit is a line of the large-cash report.
type LargeCashDeposit struct {
	Deposit    Withdrawal
	IDNumber   string
	CreditDate time.Time
}

// largeCashMax bounds the report's lines.
const largeCashMax = 10_000

// LargeCash names credited_at IS NOT NULL (every credited deposit has
// it) so that the credited rows' index can serve it: state has no index.
func (p *pgStore) LargeCash(ctx context.Context, from, to time.Time) ([]LargeCashDeposit, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+withdrawalColumns+`, id_number_sealed, credit_date FROM withdrawals
		WHERE kind = 'deposit' AND large_cash AND credited_at IS NOT NULL AND state = $1 AND credit_date BETWEEN $2 AND $3
		ORDER BY credit_date, bank_code, account_number, id LIMIT $4`, string(StateDepCredited), from, to, largeCashMax)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LargeCashDeposit, error) {
		var l LargeCashDeposit
		err := row.Scan(scanTargets(&l.Deposit, &l.IDNumber, &l.CreditDate)...)
		return l, err
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Deposit, err = p.opened(out[i].Deposit, nil); err != nil {
			return nil, err
		}
		if p.ids == nil {
			out[i].IDNumber = ""
			continue
		}
		if out[i].IDNumber, err = p.ids.OpenText(out[i].IDNumber, out[i].Deposit.ID.String()); err != nil {
			return nil, fmt.Errorf("deposit %s: its ID number: %w", out[i].Deposit.ID, err)
		}
	}
	return out, nil
}

func (p *pgStore) CreditedAt(ctx context.Context, po string, day time.Time, n int) ([]Receipt, int64, int64, error) {
	return p.cashMoved(ctx, "credited_at", "credit_date", po, day, n)
}
