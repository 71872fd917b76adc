package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/recon"
)

// ReconLines is the switch's record of withdrawals as reconciliation reads
// it (recon.Lines): recon matches a bank's settlement file against it and
// never reads the withdrawals table itself.
type ReconLines struct {
	pool *pgxpool.Pool
}

var _ recon.Lines = (*ReconLines)(nil)

// NewReconLines returns the switch's lines on pool.
func NewReconLines(pool *pgxpool.Pool) *ReconLines { return &ReconLines{pool: pool} }

// A deposit's line is dated by its credit_date, a withdrawal's by its
// business_date (each row has one of the two).
const reconLineColumns = `id, bank_code, rrn, stan, approval_code, amount, currency, state, COALESCE(business_date, credit_date)`

func scanReconLine(row pgx.Row) (recon.SwitchLine, error) {
	var l recon.SwitchLine
	var bd *time.Time
	if err := row.Scan(&l.WithdrawalID, &l.Bank, &l.RRN, &l.STAN, &l.ApprovalCode, &l.Amount, &l.Currency, &l.State, &bd); err != nil {
		return recon.SwitchLine{}, err
	}
	if bd != nil {
		l.BusinessDate = *bd
	}
	return l, nil
}

// Lines returns bank's withdrawals whose cash was handed out on business
// day date (those in a state whose hold is posted, see holdByState), and
// its deposits credited on that day: the bank's file lists both, so a
// credit the switch kept and the bank does not have shows as missing at
// the bank.
func (r *ReconLines) Lines(ctx context.Context, bank string, date time.Time) ([]recon.SwitchLine, error) {
	var out []recon.SwitchLine
	err := ledger.RunTx(ctx, r.pool, ledger.DefaultMaxRetries, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+reconLineColumns+` FROM withdrawals
			WHERE bank_code = $1 AND ((business_date = $2 AND state = ANY($3)) OR (credit_date = $2 AND state = $4))
			ORDER BY rrn`,
			bank, date, statesHolding(holdPosted), string(StateDepCredited))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanReconLine(rows)
			if err != nil {
				return err
			}
			out = append(out, l)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("reading paid withdrawals: %w", err)
	}
	return out, nil
}

// ByRRN returns the withdrawal under rrn (RRNs are unique), whatever its
// bank, state or day.
func (r *ReconLines) ByRRN(ctx context.Context, rrn string) (recon.SwitchLine, bool, error) {
	var l recon.SwitchLine
	err := ledger.RunTx(ctx, r.pool, ledger.DefaultMaxRetries, func(tx pgx.Tx) error {
		var err error
		l, err = scanReconLine(tx.QueryRow(ctx, `SELECT `+reconLineColumns+` FROM withdrawals WHERE rrn = $1`, rrn))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return recon.SwitchLine{}, false, nil
	}
	if err != nil {
		return recon.SwitchLine{}, false, fmt.Errorf("reading withdrawal by RRN: %w", err)
	}
	return l, true, nil
}

// KnownBank reports whether bank is in the switch's banks table.
func (r *ReconLines) KnownBank(ctx context.Context, bank string) (bool, error) {
	var known bool
	err := ledger.RunTx(ctx, r.pool, ledger.DefaultMaxRetries, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM banks WHERE code = $1)`, bank).Scan(&known)
	})
	return known, err
}

// Cutoffs returns every bank's cut-off (the banks table's cutoff column).
func (r *ReconLines) Cutoffs(ctx context.Context) (map[string]ledger.Cutoff, error) {
	return BankCutoffs(ctx, r.pool)
}

// BankCutoffs reads every bank's cut-off.
func BankCutoffs(ctx context.Context, pool *pgxpool.Pool) (map[string]ledger.Cutoff, error) {
	rows, err := pool.Query(ctx, `SELECT code, cutoff::TEXT FROM banks ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("reading the banks' cut-offs: %w", err)
	}
	out := map[string]ledger.Cutoff{}
	for rows.Next() {
		var code, s string
		if err := rows.Scan(&code, &s); err != nil {
			return nil, fmt.Errorf("reading the banks' cut-offs: %w", err)
		}
		c, err := ledger.ParseCutoff(s)
		if err != nil {
			return nil, fmt.Errorf("bank %s: %w", code, err)
		}
		out[code] = c
	}
	return out, rows.Err()
}

// OpenItems lists, in words, what the switch still has open when a day is
// closed: outbox and callback exceptions nobody has resolved, and claims in
// flight (a teller is paying a code right now). Neither is tied to one
// business day, so every one is listed: a close must not hide them.
func (r *ReconLines) OpenItems(ctx context.Context, _ time.Time) ([]string, error) {
	var exceptions, claims int64
	err := r.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE state = 'exception' AND resolved_note = '') +
		(SELECT count(*) FROM callbacks WHERE delivery = 'exception' AND resolved_note = ''),
		(SELECT count(*) FROM withdrawals WHERE due_at IS NOT NULL AND state = $1)`, string(StateClaimed)).Scan(&exceptions, &claims)
	if err != nil {
		return nil, fmt.Errorf("reading open exceptions and claims: %w", err)
	}
	var out []string
	if exceptions > 0 {
		out = append(out, fmt.Sprintf("%d unresolved exception(s)", exceptions))
	}
	if claims > 0 {
		out = append(out, fmt.Sprintf("%d claim(s) in flight", claims))
	}
	return out, nil
}
