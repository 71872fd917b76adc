package atmswitch

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/ledger"
)

// The switch's invariants: what its withdrawals must agree with in the
// ledger. The ledger checks its own tables (ledger.Check); it does not read
// withdrawals, so these live here, beside the states they name. State names
// and account codes are passed as arguments, never written into the SQL.

// holdOf is what the ledger must hold for a withdrawal in a state.
type holdOf int

const (
	holdNone   holdOf = iota // no hold was ever booked
	holdOpen                 // one hold, not yet resolved
	holdPosted               // one hold, posted (the cash was paid)
	holdVoided               // one hold, voided (cancelled, expired)
)

// holdByState is the hold each state implies, read off the lifecycle
// table (lifecycle.go) rather than written again: a request has none; a
// transition that posts the hold opens it, a payout posts it, a void voids
// it, and any other transition leaves it as its from-state had it (see
// DESIGN.md, "every hold ends in exactly one of: captured or released").
// Two paths that disagree about a state's hold are a broken table.
var holdByState = func() map[State]holdOf {
	m := map[State]holdOf{StateRequested: holdNone}
	for changed := true; changed; {
		changed = false
		for _, t := range transitions {
			if t.Kind.orWithdrawal() != KindWithdrawal {
				continue // a deposit holds nothing (deposits_credited_once)
			}
			h, ok := m[t.From]
			if !ok {
				continue
			}
			switch t.Posts {
			case PostHold:
				h = holdOpen
			case PostPayout:
				h = holdPosted
			case PostVoid:
				h = holdVoided
			}
			if cur, seen := m[t.To]; !seen {
				m[t.To], changed = h, true
			} else if cur != h {
				panic(fmt.Sprintf("atmswitch: state %s is reached with two holds (%d, %d)", t.To, cur, h))
			}
		}
	}
	return m
}()

// statesHolding returns the states whose hold is h, as text for SQL.
func statesHolding(h holdOf) []string {
	var out []string
	for s, hs := range holdByState {
		if hs == h {
			out = append(out, string(s))
		}
	}
	return out
}

// stateTexts renders states for an SQL array argument.
func stateTexts(ss []State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// Placeholders in account codes that a check's SQL fills from the
// withdrawal's row, so that the codes' format stays ledger's own
// (ledger.ReceivableCode, ledger.TillCode).
const (
	bankPlaceholder       = "{bank}"
	postOfficePlaceholder = "{po}"
)

// invariants are the switch's checks, each a query that returns one row
// per violation. They read every withdrawal: run them off-peak or on a
// replica.
func invariants() []ledger.Invariant {
	return []ledger.Invariant{
		// A paid withdrawal has exactly one payout transfer set (see
		// ledger.PayoutTransfers): its hold posted for its amount, and its
		// amount moved out of cashout:in_flight into the till of the post
		// office that paid it. A withdrawal not paid has neither.
		{Name: "paid_withdrawals_posted_once", Query: `
		WITH payout AS (
			SELECT t.withdrawal_id, count(*) AS n, sum(t.amount) AS amount, min(c.code) AS till
			FROM transfers t
			JOIN accounts d ON d.id = t.debit_account_id
			JOIN accounts c ON c.id = t.credit_account_id
			WHERE t.kind = $2 AND d.code = $3 AND t.withdrawal_id IS NOT NULL
			GROUP BY t.withdrawal_id
		), post AS (
			SELECT withdrawal_id, count(*) AS n, sum(amount) AS amount FROM transfers
			WHERE kind = $4 AND withdrawal_id IS NOT NULL GROUP BY withdrawal_id
		)
		SELECT 'withdrawal ' || w.id::TEXT || ' (' || w.state || ') has ' || COALESCE(o.n, 0)::TEXT ||
		       ' payout transfers for ' || COALESCE(o.amount, 0)::TEXT || ' of ' || w.amount::TEXT ||
		       COALESCE(' into ' || o.till, '') ||
		       ' and ' || COALESCE(p.n, 0)::TEXT || ' posted holds for ' || COALESCE(p.amount, 0)::TEXT
		FROM withdrawals w
		LEFT JOIN payout o ON o.withdrawal_id = w.id
		LEFT JOIN post p ON p.withdrawal_id = w.id
		WHERE (w.state = ANY($1) AND (COALESCE(o.n, 0) <> 1 OR o.amount <> w.amount
		                              OR o.till <> replace($5, $6, w.post_office)
		                              OR COALESCE(p.n, 0) <> 1 OR p.amount <> w.amount))
		   OR (NOT w.state = ANY($1) AND (o.n IS NOT NULL OR p.n IS NOT NULL))
		ORDER BY w.id`,
			Args: []any{statesHolding(holdPosted), ledger.KindSingle, ledger.AccountInFlight, ledger.KindPostPending,
				ledger.TillCode(postOfficePlaceholder), postOfficePlaceholder}},

		// Every hold resolves once, as its withdrawal's state says: one
		// hold from the withdrawal's own bank's receivable into
		// cashout:in_flight, for its amount and currency, open while the
		// code may be paid, posted once paid, voided once cancelled or
		// expired; and no hold for a request the bank never approved. A
		// state this check does not know is a violation too.
		{Name: "holds_follow_state", Query: `
		WITH hold AS (
			SELECT t.withdrawal_id, count(*) AS n, min(t.amount) AS amount, min(t.currency) AS currency,
			       min(d.code) AS debit, min(c.code) AS credit, min(r.kind) AS resolved
			FROM transfers t
			JOIN accounts d ON d.id = t.debit_account_id
			JOIN accounts c ON c.id = t.credit_account_id
			LEFT JOIN transfers r ON r.pending_id = t.id
			WHERE t.kind = $1 AND t.withdrawal_id IS NOT NULL
			GROUP BY t.withdrawal_id
		)
		SELECT 'withdrawal ' || w.id::TEXT || ' (' || w.state || ') of ' || w.amount::TEXT || ' ' || w.currency ||
		       ' has ' || COALESCE(h.n, 0)::TEXT || ' holds' ||
		       COALESCE(', of ' || h.amount::TEXT || ' ' || h.currency || ' from ' || h.debit || ' to ' || h.credit ||
		                ', ' || COALESCE(h.resolved, 'open'), '')
		FROM withdrawals w LEFT JOIN hold h ON h.withdrawal_id = w.id
		WHERE CASE
			WHEN w.kind = $11 THEN h.n IS NOT NULL -- a deposit holds nothing
			WHEN w.state = ANY($2) THEN h.n IS NOT NULL
			WHEN w.state = ANY($3) OR w.state = ANY($4) OR w.state = ANY($5) THEN
				h.n IS NULL OR h.n <> 1 OR h.amount <> w.amount OR h.currency <> w.currency
				OR h.debit <> replace($6, $7, w.bank_code) OR h.credit <> $8
				OR (w.state = ANY($3) AND h.resolved IS NOT NULL)
				OR (w.state = ANY($4) AND h.resolved IS DISTINCT FROM $9)
				OR (w.state = ANY($5) AND h.resolved IS DISTINCT FROM $10)
			ELSE true
		END
		ORDER BY w.id`,
			Args: []any{ledger.KindPending, statesHolding(holdNone), statesHolding(holdOpen), statesHolding(holdPosted),
				statesHolding(holdVoided), ledger.ReceivableCode(bankPlaceholder), bankPlaceholder, ledger.AccountInFlight,
				ledger.KindPostPending, ledger.KindVoidPending, string(KindDeposit)}},

		// A deposit is credited at most once, and only when the bank
		// approved it: a credited deposit has exactly one transfer, from
		// the till of the post office that took the cash into its bank's
		// payable, for its amount, which is the amount the bank approved;
		// a deposit in any other state has no transfer at all.
		{Name: "deposits_credited_once", Query: `
		WITH t AS (
			SELECT t.withdrawal_id, count(*) AS n, sum(t.amount) AS amount, min(t.kind) AS kind,
			       min(d.code) AS debit, min(c.code) AS credit
			FROM transfers t
			JOIN accounts d ON d.id = t.debit_account_id
			JOIN accounts c ON c.id = t.credit_account_id
			WHERE t.withdrawal_id IS NOT NULL
			GROUP BY t.withdrawal_id
		)
		SELECT 'deposit ' || w.id::TEXT || ' (' || w.state || ') of ' || w.amount::TEXT || ', approved ' ||
		       w.approved_amount::TEXT || ', has ' || COALESCE(t.n, 0)::TEXT || ' transfers' ||
		       COALESCE(' for ' || t.amount::TEXT || ' from ' || t.debit || ' to ' || t.credit, '')
		FROM withdrawals w LEFT JOIN t ON t.withdrawal_id = w.id
		WHERE w.kind = $1 AND CASE
			WHEN w.state = ANY($2) THEN t.n IS NULL OR t.n <> 1 OR t.kind <> $3 OR t.amount <> w.amount
				OR w.approved_amount <> w.amount
				OR t.debit <> replace($4, $5, w.post_office) OR t.credit <> replace($6, $7, w.bank_code)
			ELSE t.n IS NOT NULL
		END
		ORDER BY w.id`,
			Args: []any{string(KindDeposit), stateTexts(CreditedStates), ledger.KindSingle,
				ledger.TillCode(postOfficePlaceholder), postOfficePlaceholder, ledger.PayableCode(bankPlaceholder), bankPlaceholder}},

		// The bank approved what was paid: every paid withdrawal's approved
		// amount (field 4 of its 0110) equals its amount, which the check
		// above holds equal to what was posted.
		{Name: "paid_amount_approved", Query: `
		SELECT 'withdrawal ' || w.id::TEXT || ' (' || w.state || ') of ' || w.amount::TEXT ||
		       ' was approved for ' || w.approved_amount::TEXT
		FROM withdrawals w WHERE w.state = ANY($1) AND w.approved_amount <> w.amount
		ORDER BY w.id`, Args: []any{statesHolding(holdPosted)}},

		// Every transfer that names a withdrawal names one the switch has.
		{Name: "transfers_name_known_withdrawals", Query: `
		SELECT 'transfer ' || t.id::TEXT || ' (' || t.kind || ') names withdrawal ' || t.withdrawal_id::TEXT ||
		       ', which the switch does not have'
		FROM transfers t
		WHERE t.withdrawal_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.id = t.withdrawal_id)
		ORDER BY t.id`},
	}
}

// Check runs the switch's invariants in one read-only snapshot and returns
// one result per invariant, in the shape of ledger.Check (`softatm admin
// check` runs both). The error is for failing to check, not for a broken
// invariant.
func Check(ctx context.Context, pool *pgxpool.Pool) ([]ledger.CheckResult, error) {
	return ledger.CheckInvariants(ctx, pool, invariants())
}
