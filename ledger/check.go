package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CheckResult is the outcome of one invariant check.
type CheckResult struct {
	Name   string
	OK     bool
	Detail string // what is wrong (at most checkExamplesMax examples), or a summary
}

// checkExamplesMax bounds the examples a failed check lists.
const checkExamplesMax = 10

// Invariant is one check: a query that returns one text row per violation
// (none when the invariant holds).
type Invariant struct {
	Name  string
	Query string
	Args  []any
}

// checks are the ledger's invariants, on its own tables only (accounts,
// transfers, business days); what the switch's records must agree with in
// the ledger the switch checks itself (atmswitch.Check). They read the
// whole ledger: run them off-peak or on a replica.
var checks = []Invariant{
	{Name: "debits_equal_credits", Query: `
		SELECT 'pending debits ' || sum(debits_pending)::TEXT || ' credits ' || sum(credits_pending)::TEXT ||
		       ', posted debits ' || sum(debits_posted)::TEXT || ' credits ' || sum(credits_posted)::TEXT
		FROM accounts
		HAVING sum(debits_pending) <> sum(credits_pending) OR sum(debits_posted) <> sum(credits_posted)`},
	{Name: "tills_not_below_zero", Query: `
		SELECT code || ' debits_posted ' || debits_posted::TEXT || ' credits ' || (credits_posted + credits_pending)::TEXT
		FROM accounts
		WHERE (flags & 1) <> 0 AND credits_posted + credits_pending > debits_posted
		ORDER BY code`},
	{Name: "balances_match_transfers", Query: `
		WITH moves AS (
			SELECT t.debit_account_id AS acct,
				CASE t.kind WHEN 'pending' THEN t.amount WHEN 'post_pending' THEN -p.amount WHEN 'void_pending' THEN -p.amount ELSE 0 END AS dp,
				CASE t.kind WHEN 'single' THEN t.amount WHEN 'post_pending' THEN t.amount ELSE 0 END AS dpo,
				0::BIGINT AS cp, 0::BIGINT AS cpo
			FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id
			UNION ALL
			SELECT t.credit_account_id,
				0::BIGINT, 0::BIGINT,
				CASE t.kind WHEN 'pending' THEN t.amount WHEN 'post_pending' THEN -p.amount WHEN 'void_pending' THEN -p.amount ELSE 0 END,
				CASE t.kind WHEN 'single' THEN t.amount WHEN 'post_pending' THEN t.amount ELSE 0 END
			FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id
		), sums AS (
			SELECT acct, sum(dp) AS dp, sum(dpo) AS dpo, sum(cp) AS cp, sum(cpo) AS cpo FROM moves GROUP BY acct
		)
		SELECT a.code || ' columns ' || a.debits_pending::TEXT || '/' || a.debits_posted::TEXT || '/' ||
		       a.credits_pending::TEXT || '/' || a.credits_posted::TEXT || ' transfers ' ||
		       COALESCE(s.dp, 0)::TEXT || '/' || COALESCE(s.dpo, 0)::TEXT || '/' || COALESCE(s.cp, 0)::TEXT || '/' || COALESCE(s.cpo, 0)::TEXT
		FROM accounts a LEFT JOIN sums s ON s.acct = a.id
		WHERE a.debits_pending <> COALESCE(s.dp, 0) OR a.debits_posted <> COALESCE(s.dpo, 0)
		   OR a.credits_pending <> COALESCE(s.cp, 0) OR a.credits_posted <> COALESCE(s.cpo, 0)
		ORDER BY a.code`},
	{Name: "pending_resolved_at_most_once", Query: `
		SELECT 'pending ' || t.pending_id::TEXT || ' resolved ' || count(*)::TEXT || ' times'
		FROM transfers t WHERE t.pending_id IS NOT NULL GROUP BY t.pending_id HAVING count(*) > 1
		UNION ALL
		SELECT 'transfer ' || t.id::TEXT || ' resolves ' || t.pending_id::TEXT || ' which is not a pending transfer'
		FROM transfers t JOIN transfers p ON p.id = t.pending_id WHERE p.kind <> 'pending'
		UNION ALL
		SELECT 'transfer ' || t.id::TEXT || ' posts ' || t.amount::TEXT || ' of pending ' || p.amount::TEXT
		FROM transfers t JOIN transfers p ON p.id = t.pending_id
		WHERE (t.kind = 'post_pending' AND t.amount > p.amount) OR (t.kind = 'void_pending' AND t.amount <> p.amount)`},
	{Name: "closed_days_frozen", Query: `
		SELECT 'day ' || d.date::TEXT || ' closed with ' || d.transfer_count::TEXT || ' transfers / ' || d.amount_sum::TEXT ||
		       ', now ' || count(t.id)::TEXT || ' / ' || COALESCE(sum(t.amount), 0)::TEXT
		FROM business_days d LEFT JOIN transfers t ON t.business_date = d.date
		WHERE d.closed
		GROUP BY d.date, d.transfer_count, d.amount_sum
		HAVING count(t.id) <> d.transfer_count OR COALESCE(sum(t.amount), 0) <> d.amount_sum
		ORDER BY d.date`},
	// Every till count's difference is booked to the post office's
	// over/short account on the count's business day, and nothing else is
	// (see Count): over credits it, short debits it.
	{Name: "till_counts_booked", Query: `
		WITH booked AS (
			SELECT split_part(a.code, ':', 2) AS po, t.business_date AS d,
				sum(CASE WHEN t.credit_account_id = a.id THEN t.amount ELSE -t.amount END) AS diff
			FROM accounts a JOIN transfers t ON (t.debit_account_id = a.id OR t.credit_account_id = a.id)
			WHERE a.code LIKE 'po:%:over_short' AND t.kind = 'single'
			GROUP BY 1, 2
		), counted AS (
			SELECT post_office AS po, business_date AS d, counted - expected AS diff FROM till_counts
		)
		SELECT COALESCE(c.po, b.po) || ' ' || COALESCE(c.d, b.d)::TEXT || ': count differs by ' ||
		       COALESCE(c.diff, 0)::TEXT || ', over/short booked ' || COALESCE(b.diff, 0)::TEXT
		FROM counted c FULL OUTER JOIN booked b ON b.po = c.po AND b.d = c.d
		WHERE COALESCE(c.diff, 0) <> COALESCE(b.diff, 0)
		ORDER BY 1`},
}

// Check runs every ledger invariant in one read-only snapshot and returns
// one result per invariant. The error is for failing to check, not for a
// broken invariant.
func Check(ctx context.Context, pool *pgxpool.Pool) ([]CheckResult, error) {
	return CheckInvariants(ctx, pool, checks)
}

// CheckInvariants runs invariants in one snapshot (one SERIALIZABLE
// transaction that only reads) and returns one result per invariant, in
// order; other packages run their own invariants through it.
func CheckInvariants(ctx context.Context, pool *pgxpool.Pool, invariants []Invariant) ([]CheckResult, error) {
	var out []CheckResult
	err := RunTx(ctx, pool, DefaultMaxRetries, func(tx pgx.Tx) error {
		out = out[:0]
		for _, c := range invariants {
			rows, err := tx.Query(ctx, c.Query, c.Args...)
			if err != nil {
				return fmt.Errorf("check %s: %w", c.Name, err)
			}
			var bad []string
			n := 0
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					rows.Close()
					return fmt.Errorf("check %s: %w", c.Name, err)
				}
				if n < checkExamplesMax {
					bad = append(bad, s)
				}
				n++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("check %s: %w", c.Name, err)
			}
			r := CheckResult{Name: c.Name, OK: n == 0, Detail: "ok"}
			if n > 0 {
				r.Detail = fmt.Sprintf("%d violation(s): %s", n, strings.Join(bad, "; "))
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
