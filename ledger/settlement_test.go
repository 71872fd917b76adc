package ledger

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// withdrawal is the ledger's side of a withdrawal: its hold, then either
// its payout (paidDate set) or the void of the hold. The ledger knows
// nothing else of it: the settlement report is built from these transfers
// alone.
type withdrawal struct {
	id       uuid.UUID
	bank, po string
	amount   int64
	paidDate time.Time // business date of the payout, zero if not paid
	void     bool      // not paid: the hold is voided (cancelled, expired)
	fee      int64
}

// book commits the withdrawal's transfers as the switch does: the hold,
// then the payout unit (post the hold, cash out of the till, the fee) or
// the void.
func book(tb testing.TB, l *Ledger, w withdrawal) {
	tb.Helper()
	ctx := context.Background()
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{HoldTransfer(w.id, w.bank, w.amount, vnd)}}); err != nil {
		tb.Fatal(err)
	}
	switch {
	case !w.paidDate.IsZero():
		at := time.Date(w.paidDate.Year(), w.paidDate.Month(), w.paidDate.Day(), 10, 0, 0, 0, ict)
		if _, err := l.Commit(ctx, Unit{At: at, Transfers: PayoutTransfers(w.id, w.bank, w.po, w.amount, w.fee, vnd)}); err != nil {
			tb.Fatal(err)
		}
	case w.void:
		if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{VoidTransfer(w.id, vnd)}}); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestSettlement(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	day1, day2 := civilDate(2025, 6, 2), civilDate(2025, 6, 3)
	if err := l.EnsureAccount(ctx, TillCode("LS-002"), vnd, FlagCreditsMustNotExceedDebits); err != nil {
		t.Fatal(err)
	}
	for _, po := range []string{"LS-001", "LS-002"} {
		if _, err := l.Commit(ctx, Unit{At: time.Date(2025, 6, 1, 9, 0, 0, 0, ict),
			Transfers: []Transfer{single(uuid.New(), TillCode(po), AccountSettlement, 10_000_000)}}); err != nil {
			t.Fatal(err)
		}
	}
	ws := []withdrawal{
		{bank: "MB", po: "LS-001", amount: 1_000_000, paidDate: day1, fee: 3_000},
		{bank: "MB", po: "LS-001", amount: 500_000, paidDate: day1, fee: 3_000},
		{bank: "VCB", po: "LS-002", amount: 2_000_000, paidDate: day1},
		{bank: "MB", po: "LS-002", amount: 700_000, paidDate: day2, fee: 3_000},
		{bank: "MB", amount: 900_000, void: true}, // cancelled: not in the report
		{bank: "VCB", amount: 400_000},            // reserved, not paid yet: not in the report
	}
	for _, w := range ws {
		w.id = uuid.New()
		book(t, l, w)
	}
	// Postings that are not payouts are not counted as payouts: a hold of
	// VCB's that is not cash out (credit settlement, not in-flight), posted
	// on day 1, and a move out of in-flight into an account that is no till.
	other := Transfer{ID: uuid.New(), Debit: ReceivableCode("VCB"), Credit: AccountSettlement, Amount: 50_000, Currency: vnd, Kind: KindPending}
	day1Noon := time.Date(2025, 6, 2, 12, 0, 0, 0, ict)
	for _, u := range []Unit{
		{At: day1Noon, Transfers: []Transfer{other}},
		{At: day1Noon, Transfers: []Transfer{{ID: uuid.New(), Kind: KindPostPending, PendingID: other.ID}}},
		{At: day1Noon, Transfers: []Transfer{single(uuid.New(), AccountInFlight, AccountSettlement, 20_000)}},
	} {
		if _, err := l.Commit(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.CloseDay(ctx, DayClose{Date: day1, By: "finance"}); err != nil {
		t.Fatal(err)
	}
	if err := l.SettleBank(ctx, day1, "MB", 1_506_000, vnd, uuid.New()); err != nil {
		t.Fatal(err)
	}

	rep, err := l.Settlement(ctx, day1)
	if err != nil {
		t.Fatal(err)
	}
	wantBanks := []BankTotal{
		{Bank: "MB", Count: 2, Gross: 1_500_000, Fees: 6_000, Net: 1_506_000, Settled: 1_506_000, Currency: vnd},
		{Bank: "VCB", Count: 1, Gross: 2_000_000, Net: 2_000_000, Outstanding: 2_000_000, Currency: vnd},
	}
	wantPOs := []PostOfficeTotal{
		{PostOffice: "LS-001", Count: 2, CashOut: 1_500_000, TillOpening: 10_000_000, TillClosing: 8_500_000, Currency: vnd},
		{PostOffice: "LS-002", Count: 1, CashOut: 2_000_000, TillOpening: 10_000_000, TillClosing: 8_000_000, Currency: vnd},
	}
	if !rep.Closed || !rep.Date.Equal(day1) || fmt.Sprint(rep.Banks) != fmt.Sprint(wantBanks) || fmt.Sprint(rep.PostOffices) != fmt.Sprint(wantPOs) {
		t.Fatalf("report:\n%+v\nwant banks %+v\npost offices %+v", rep, wantBanks, wantPOs)
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	wantCSV := `kind,business_date,closed,bank,post_office,count,gross,fees,net,settled,outstanding,till_opening,replenished,collected,cash_out,over_short,other,till_closing,counted,currency
bank,2025-06-02,true,MB,,2,1500000,6000,1506000,1506000,0,,,,,,,,,VND
bank,2025-06-02,true,VCB,,1,2000000,0,2000000,0,2000000,,,,,,,,,VND
bank_total,2025-06-02,true,,,3,3500000,6000,3506000,1506000,2000000,,,,,,,,,VND
post_office,2025-06-02,true,,LS-001,2,,,,,,10000000,0,0,1500000,0,0,8500000,,VND
post_office,2025-06-02,true,,LS-002,1,,,,,,10000000,0,0,2000000,0,0,8000000,,VND
post_office_total,2025-06-02,true,,,3,,,,,,20000000,0,0,3500000,0,0,16500000,,VND
`
	if got := buf.String(); got != wantCSV {
		t.Fatalf("CSV:\n%s\nwant:\n%s", got, wantCSV)
	}

	rep2, err := l.Settlement(ctx, day2)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Closed || len(rep2.Banks) != 1 || rep2.Banks[0].Net != 703_000 ||
		len(rep2.PostOffices) != 2 || rep2.PostOffices[1].TillOpening != 8_000_000 || rep2.PostOffices[1].TillClosing != 7_300_000 {
		t.Fatalf("day 2 report: %+v", rep2)
	}
	if a := mustAccount(t, l, ReceivableCode("MB")); a.DebitsPosted-a.CreditsPosted != 703_000 || a.DebitsPending != 0 {
		t.Fatalf("MB receivable after settling day 1: %+v", a)
	}
	mustCheck(t, pool)
}

// TestCheckFindsCorruption breaks each invariant directly in SQL and
// expects Check to name it.
func TestCheckFindsCorruption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name, check string
		sql         []string
	}{
		{"one-sided balance", "debits_equal_credits",
			[]string{`UPDATE accounts SET debits_posted = debits_posted + 1 WHERE code = 'fees:income'`}},
		{"balance without transfer", "balances_match_transfers",
			[]string{`UPDATE accounts SET debits_posted = debits_posted + 5 WHERE code = 'fees:income'`,
				`UPDATE accounts SET credits_posted = credits_posted + 5 WHERE code = 'settlement:bank_account'`}},
		{"till below zero", "tills_not_below_zero",
			[]string{`ALTER TABLE accounts DROP CONSTRAINT accounts_credits_within_debits`,
				`UPDATE accounts SET credits_posted = debits_posted + 1 WHERE code = 'po:LS-001:till'`}},
		{"pending resolved twice", "pending_resolved_at_most_once",
			[]string{`DROP INDEX transfers_resolves_once`,
				`INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, kind, pending_id, business_date)
				 SELECT gen_random_uuid(), debit_account_id, credit_account_id, 0, currency, 'void_pending', pending_id, business_date
				 FROM transfers WHERE kind = 'post_pending'`}},
		{"till count not booked", "till_counts_booked",
			[]string{`UPDATE till_counts SET counted = counted + 1`}},
		{"over/short without a count", "till_counts_booked",
			[]string{`DELETE FROM till_counts`}},
		{"posting into a closed day", "closed_days_frozen",
			[]string{`INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, kind, business_date)
				SELECT gen_random_uuid(), debit_account_id, credit_account_id, 1, currency, 'single', date '2025-06-02'
				FROM transfers LIMIT 1`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, pool := mustLedger(t)
			if err := l.Replenish(ctx, "LS-001", 1_000_000, vnd, uuid.New()); err != nil {
				t.Fatal(err)
			}
			book(t, l, withdrawal{id: uuid.New(), bank: "MB", po: "LS-001", amount: 400_000,
				paidDate: civilDate(2025, 6, 2), fee: 1_000})
			if err := l.CloseDay(ctx, DayClose{Date: civilDate(2025, 6, 2), By: "finance"}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Count(ctx, "LS-001", 599_000, "teller", uuid.New()); err != nil { // 1.000 ₫ short
				t.Fatal(err)
			}
			mustCheck(t, pool) // good data passes
			for _, q := range c.sql {
				if _, err := pool.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			res, err := Check(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range res {
				if r.Name == c.check {
					found = true
					if r.OK || !strings.Contains(r.Detail, "violation") {
						t.Fatalf("check %s passed on corrupted data: %+v", c.check, r)
					}
				}
			}
			if !found {
				t.Fatalf("no check named %s", c.check)
			}
		})
	}
}
