package atmswitch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema/schematest"
	atmswitch "github.com/softatm/softatm/switch"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// checkRow is one withdrawal as the switch and the ledger would have
// recorded it, written directly, so that each test case below can then
// make one of the two records lie.
type checkRow struct {
	id       uuid.UUID
	bank, po string
	amount   int64
	state    atmswitch.State
	hold     bool // the hold was booked
	paid     bool // the payout transfers were booked
	void     bool // the hold was voided
	fee      int64
	deposit  bool // a deposit; credited: its transfer was booked
}

// checkRows are one withdrawal in each kind of state; the cases refer to
// them by state.
var checkRows = []checkRow{
	{bank: "MB", amount: 100_000, state: atmswitch.StateRequested},
	{bank: "MB", amount: 110_000, state: atmswitch.StateDeclined},
	{bank: "MB", amount: 120_000, state: atmswitch.StateFailed},
	{bank: "MB", amount: 200_000, state: atmswitch.StateReserved, hold: true},
	{bank: "AGR", amount: 210_000, state: atmswitch.StateClaimed, hold: true},
	{bank: "MB", po: "LS-001", amount: 300_000, state: atmswitch.StatePaid, hold: true, paid: true},
	{bank: "AGR", po: "LS-001", amount: 310_000, state: atmswitch.StateCompleted, hold: true, paid: true, fee: 2_000},
	{bank: "MB", amount: 400_000, state: atmswitch.StateCancelled, hold: true, void: true},
	{bank: "AGR", amount: 410_000, state: atmswitch.StateExpired, hold: true, void: true},
	{bank: "MB", po: "LS-001", amount: 500_000, state: atmswitch.StateDepCredited, deposit: true},
	{bank: "AGR", po: "LS-003", amount: 510_000, state: atmswitch.StateDepCrediting, deposit: true},
	{bank: "MB", po: "LS-001", amount: 520_000, state: atmswitch.StateDepFailed, deposit: true},
	{bank: "AGR", amount: 530_000, state: atmswitch.StateDepIssued, deposit: true},
}

// mustCheckData returns a database holding checkRows, with the switch's
// rows and the ledger's transfers in agreement.
func mustCheckData(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool := schematest.MustPool(t, switchschema.All()...)
	l := ledger.New(pool)
	t.Cleanup(l.Close)
	seed(t, pool, l)
	for i, r := range checkRows {
		r.id = uuid.New()
		_, err := pool.Exec(ctx, `INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state,
			terminal_id, stan, rrn, transmitted_at, post_office, approved_amount, kind)
			VALUES ($1, $2, '0123456789', $3, $4, $5, 'KLS00101', $6, $6, now(), $7, CASE WHEN $8 THEN $3::BIGINT ELSE 0 END, $9)`,
			r.id, r.bank, r.amount, currencyVN, string(r.state), fmt.Sprintf("%06d", i+1), r.po,
			r.hold || r.state == atmswitch.StateDepCredited, map[bool]string{false: "withdrawal", true: "deposit"}[r.deposit])
		if err != nil {
			t.Fatal(err)
		}
		var units []ledger.Unit
		if r.hold {
			units = append(units, ledger.Unit{Transfers: []ledger.Transfer{ledger.HoldTransfer(r.id, r.bank, r.amount, currencyVN)}})
		}
		if r.paid {
			units = append(units, ledger.Unit{Transfers: ledger.PayoutTransfers(r.id, r.bank, r.po, r.amount, r.fee, currencyVN)})
		}
		if r.deposit && r.state == atmswitch.StateDepCredited {
			units = append(units, ledger.Unit{Transfers: []ledger.Transfer{ledger.DepositTransfer(r.id, r.bank, r.po, r.amount, currencyVN)}})
		}
		if r.void {
			units = append(units, ledger.Unit{Transfers: []ledger.Transfer{ledger.VoidTransfer(r.id, currencyVN)}})
		}
		for _, u := range units {
			if _, err := l.Commit(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
	}
	return pool
}

func mustSwitchCheck(t *testing.T, pool *pgxpool.Pool) []ledger.CheckResult {
	t.Helper()
	res, err := atmswitch.Check(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestCheckFindsDisagreement makes the switch's record and the ledger's
// disagree, one way per case, and expects atmswitch.Check to name each
// check that must see it, and the ledger's own checks to stay green (the
// ledger alone cannot see these).
func TestCheckFindsDisagreement(t *testing.T) {
	t.Parallel()
	const (
		paidCheck     = "paid_withdrawals_posted_once"
		holdsCheck    = "holds_follow_state"
		namesCheck    = "transfers_name_known_withdrawals"
		approvedCheck = "paid_amount_approved"
		depositCheck  = "deposits_credited_once"
	)
	for _, c := range []struct {
		name   string
		sql    string
		checks []string
	}{
		{"paid without a payout", `INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state,
			terminal_id, stan, rrn, transmitted_at, post_office)
			VALUES (gen_random_uuid(), 'MB', '1', 5, '704', 'paid', 'K', '000099', 'RRN-NO-PAYOUT', now(), 'LS-001')`,
			[]string{paidCheck, holdsCheck, approvedCheck}},
		{"a payout of a withdrawal the switch cancelled", `UPDATE withdrawals SET state = 'cancelled' WHERE state = 'paid'`,
			[]string{paidCheck, holdsCheck}},
		{"paid more than the ledger posted", `UPDATE withdrawals SET amount = amount + 1 WHERE state = 'completed'`,
			[]string{paidCheck, holdsCheck, approvedCheck}},
		{"paid another amount than the bank approved", `UPDATE withdrawals SET approved_amount = approved_amount - 10000 WHERE state = 'paid'`,
			[]string{approvedCheck}},
		{"paid at another post office than the till the cash left", `UPDATE withdrawals SET post_office = 'LS-003' WHERE state = 'paid'`,
			[]string{paidCheck}},
		{"a hold on another bank's receivable", `UPDATE withdrawals SET bank_code = 'AGR' WHERE state = 'reserved'`,
			[]string{holdsCheck}},
		{"a hold of another amount", `UPDATE withdrawals SET amount = amount - 1 WHERE state = 'claimed'`,
			[]string{holdsCheck}},
		{"a hold of another currency", `UPDATE withdrawals SET currency = 'VND' WHERE state = 'reserved'`,
			[]string{holdsCheck}},
		{"cancelled with the hold still open", `UPDATE withdrawals SET state = 'cancelled' WHERE state = 'reserved'`,
			[]string{holdsCheck}},
		{"a code payable again with its hold voided", `UPDATE withdrawals SET state = 'reserved' WHERE state = 'expired'`,
			[]string{holdsCheck}},
		{"declined with a hold", `UPDATE withdrawals SET state = 'declined' WHERE state = 'claimed'`,
			[]string{holdsCheck}},
		{"requested without a hold, then reserved", `UPDATE withdrawals SET state = 'reserved' WHERE state = 'requested'`,
			[]string{holdsCheck}},
		{"a transfer naming a withdrawal the switch does not have", `UPDATE transfers SET withdrawal_id = gen_random_uuid()
			WHERE kind = 'void_pending' AND id = (SELECT min(id::TEXT)::UUID FROM transfers WHERE kind = 'void_pending')`,
			[]string{namesCheck}},
		{"a deposit credited, then recorded failed (the cash kept and the credit reversed)",
			`UPDATE withdrawals SET state = 'credit_failed' WHERE state = 'credited'`, []string{depositCheck}},
		{"a deposit recorded credited that the ledger never posted",
			`UPDATE withdrawals SET state = 'credited', approved_amount = amount WHERE state = 'crediting'`, []string{depositCheck}},
		{"a deposit credited for more than the bank approved",
			`UPDATE withdrawals SET approved_amount = approved_amount - 10000 WHERE state = 'credited'`, []string{depositCheck}},
		{"a deposit credited for another amount than the till took",
			`UPDATE withdrawals SET amount = amount + 10000, approved_amount = approved_amount + 10000 WHERE state = 'credited'`,
			[]string{depositCheck}},
		{"a deposit taken at another post office than the till debited",
			`UPDATE withdrawals SET post_office = 'LS-003' WHERE state = 'credited'`, []string{depositCheck}},
		{"a deposit credited to another bank than the payable credited",
			`UPDATE withdrawals SET bank_code = 'AGR' WHERE state = 'credited'`, []string{depositCheck}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := mustCheckData(t)
			for _, r := range mustSwitchCheck(t, pool) {
				if !r.OK {
					t.Fatalf("check %s fails on agreeing records: %s", r.Name, r.Detail)
				}
			}
			if _, err := pool.Exec(ctx, c.sql); err != nil {
				t.Fatalf("%s: %v", c.sql, err)
			}
			failed := map[string]string{}
			for _, r := range mustSwitchCheck(t, pool) {
				if !r.OK {
					if !strings.Contains(r.Detail, "violation") {
						t.Errorf("check %s failed without a violation: %s", r.Name, r.Detail)
					}
					failed[r.Name] = r.Detail
				}
			}
			for _, name := range c.checks {
				if _, ok := failed[name]; !ok {
					t.Errorf("check %s passed; the records disagree", name)
				}
				delete(failed, name)
			}
			for name, d := range failed {
				t.Errorf("check %s failed too: %s", name, d)
			}
			res, err := ledger.Check(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if !r.OK {
					t.Errorf("ledger check %s failed: %s", r.Name, r.Detail)
				}
			}
		})
	}
}

// TestCheckKnowsEveryState: a state the hold check does not know is a
// violation, so that a new state cannot slip past it.
func TestCheckKnowsEveryState(t *testing.T) {
	t.Parallel()
	pool := mustCheckData(t)
	ctx := context.Background()
	// The table's CHECK lists the states; a new one would be added there.
	if _, err := pool.Exec(ctx, `ALTER TABLE withdrawals DROP CONSTRAINT withdrawals_state_check`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE withdrawals SET state = 'refunded' WHERE state = 'completed'`); err != nil {
		t.Fatal(err)
	}
	for _, r := range mustSwitchCheck(t, pool) {
		if r.Name == "holds_follow_state" && (r.OK || !strings.Contains(r.Detail, "refunded")) {
			t.Fatalf("an unknown state passed: %+v", r)
		}
	}
}
