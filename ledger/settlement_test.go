package ledger

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

type withdrawal struct {
	id         uuid.UUID
	bank, po   string
	amount     int64
	state      string
	rrn        string
	paidDate   time.Time // business date, zero if not paid
	hold, paid bool      // book the hold / the payout transfers
	fee        int64
}

func mustBanks(tb testing.TB, pool *pgxpool.Pool, codes ...string) {
	tb.Helper()
	for _, c := range codes {
		if _, err := pool.Exec(context.Background(), `INSERT INTO banks (code, name) VALUES ($1, $1)`, c); err != nil {
			tb.Fatal(err)
		}
	}
}

// book inserts the withdrawal row and its ledger transfers as the switch
// would: the hold, then the payout unit whose Apply marks it paid.
func book(tb testing.TB, l *Ledger, pool *pgxpool.Pool, w withdrawal) {
	tb.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state,
		terminal_id, stan, rrn, transmitted_at, approval_code)
		VALUES ($1, $2, '0123456789', $3, 'VND', 'reserved', 'KIOSK001', '000001', $4, now(), 'A00001')`,
		w.id, w.bank, w.amount, w.rrn)
	if err != nil {
		tb.Fatal(err)
	}
	if w.hold {
		if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{HoldTransfer(w.id, w.bank, w.amount, vnd)}}); err != nil {
			tb.Fatal(err)
		}
	}
	if w.paid {
		at := time.Date(w.paidDate.Year(), w.paidDate.Month(), w.paidDate.Day(), 10, 0, 0, 0, ict)
		_, err := l.Commit(ctx, Unit{At: at,
			Apply: func(ctx context.Context, tx pgx.Tx, d time.Time) error {
				_, err := tx.Exec(ctx, `UPDATE withdrawals SET state = $2, post_office = $3, paid_at = $4, business_date = $5
					WHERE id = $1 AND state = 'reserved'`, w.id, w.state, w.po, at, d)
				return err
			},
			Transfers: PayoutTransfers(w.id, w.bank, w.po, w.amount, w.fee, vnd)})
		if err != nil {
			tb.Fatal(err)
		}
	} else if w.state != "reserved" {
		if w.hold {
			if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{VoidTransfer(w.id, vnd)}}); err != nil {
				tb.Fatal(err)
			}
		}
		if _, err := pool.Exec(ctx, `UPDATE withdrawals SET state = $2 WHERE id = $1`, w.id, w.state); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestSettlement(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	mustBanks(t, pool, "MB", "VCB")
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
	n := 0
	rrn := func() string { n++; return fmt.Sprintf("%012d", n) }
	ws := []withdrawal{
		{bank: "MB", po: "LS-001", amount: 1_000_000, state: "completed", paidDate: day1, fee: 3_000},
		{bank: "MB", po: "LS-001", amount: 500_000, state: "paid", paidDate: day1, fee: 3_000},
		{bank: "VCB", po: "LS-002", amount: 2_000_000, state: "completed", paidDate: day1},
		{bank: "MB", po: "LS-002", amount: 700_000, state: "completed", paidDate: day2, fee: 3_000},
		{bank: "MB", amount: 900_000, state: "cancelled"},
	}
	for _, w := range ws {
		w.id, w.rrn, w.hold = uuid.New(), rrn(), true
		w.paid = !w.paidDate.IsZero()
		book(t, l, pool, w)
	}
	if err := l.CloseDay(ctx, day1, "finance"); err != nil {
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
		{Bank: "VCB", Count: 1, Gross: 2_000_000, Net: 2_000_000, Currency: vnd},
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
	wantCSV := `kind,business_date,closed,bank,post_office,count,gross,fees,net,settled,cash_out,till_opening,till_closing,currency
bank,2025-06-02,true,MB,,2,1500000,6000,1506000,1506000,,,,VND
bank,2025-06-02,true,VCB,,1,2000000,0,2000000,0,,,,VND
post_office,2025-06-02,true,,LS-001,2,,,,,1500000,10000000,8500000,VND
post_office,2025-06-02,true,,LS-002,1,,,,,2000000,10000000,8000000,VND
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
		{"paid without payout", "paid_withdrawals_posted_once",
			[]string{`INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state, terminal_id, stan, rrn, transmitted_at)
				VALUES (gen_random_uuid(), 'MB', '1', 5, 'VND', 'paid', 'K', '000009', 'RRN-NO-PAYOUT', now())`}},
		{"payout of an unpaid withdrawal", "paid_withdrawals_posted_once",
			[]string{`UPDATE withdrawals SET state = 'cancelled'`}},
		{"pending resolved twice", "pending_resolved_at_most_once",
			[]string{`DROP INDEX transfers_resolves_once`,
				`INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, kind, pending_id, business_date)
				 SELECT gen_random_uuid(), debit_account_id, credit_account_id, 0, currency, 'void_pending', pending_id, business_date
				 FROM transfers WHERE kind = 'post_pending'`}},
		{"posting into a closed day", "closed_days_frozen",
			[]string{`INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, kind, business_date)
				SELECT gen_random_uuid(), debit_account_id, credit_account_id, 1, currency, 'single', date '2025-06-02'
				FROM transfers LIMIT 1`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, pool := mustLedger(t)
			mustBanks(t, pool, "MB")
			if err := l.Replenish(ctx, "LS-001", 1_000_000, vnd, uuid.New()); err != nil {
				t.Fatal(err)
			}
			book(t, l, pool, withdrawal{id: uuid.New(), bank: "MB", po: "LS-001", amount: 400_000, state: "paid",
				rrn: "000000000001", paidDate: civilDate(2025, 6, 2), hold: true, paid: true, fee: 1_000})
			if err := l.CloseDay(ctx, civilDate(2025, 6, 2), "finance"); err != nil {
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
