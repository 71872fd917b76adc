package ledger

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestSettlementNetsDeposits: a bank's deposits credited on the day are
// netted against its withdrawals (net = gross + fees − deposits), both
// gross figures stay on the report and in the CSV, and each till's cash in
// is its own column of its day: opening + replenished − collected −
// cash_out + cash_in + over_short + other = closing. A deposit's transfer
// committed twice is booked once.
func TestSettlementNetsDeposits(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	day := civilDate(2025, 6, 2)
	at := time.Date(2025, 6, 2, 10, 0, 0, 0, ict)
	for _, a := range []string{ReceivableCode("AGR"), PayableCode("MB"), PayableCode("AGR")} {
		if err := l.EnsureAccount(ctx, a, vnd, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.EnsureAccount(ctx, TillCode("LS-002"), vnd, FlagCreditsMustNotExceedDebits); err != nil {
		t.Fatal(err)
	}
	for _, po := range []string{"LS-001", "LS-002"} {
		if _, err := l.Commit(ctx, Unit{At: time.Date(2025, 6, 1, 9, 0, 0, 0, ict),
			Transfers: []Transfer{single(uuid.New(), TillCode(po), AccountSettlement, 10_000_000)}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []withdrawal{
		{bank: "MB", po: "LS-001", amount: 1_000_000, paidDate: day, fee: 3_000},
		{bank: "AGR", po: "LS-002", amount: 500_000, paidDate: day},
	} {
		w.id = uuid.New()
		book(t, l, w)
	}
	retried := DepositTransfer(uuid.New(), "MB", "LS-001", 2_000_000, vnd)
	for _, tr := range []Transfer{
		DepositTransfer(uuid.New(), "MB", "LS-002", 700_000, vnd),
		retried,
		retried, // the same deposit's approval recorded again: a no-op
		DepositTransfer(uuid.New(), "AGR", "LS-001", 300_000, vnd),
	} {
		if _, err := l.Commit(ctx, Unit{At: at, Transfers: []Transfer{tr}}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := l.Settlement(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	byBank := map[string]BankTotal{}
	for _, b := range rep.Banks {
		byBank[b.Bank] = b
	}
	if b := byBank["MB"]; b.Gross != 1_000_000 || b.Fees != 3_000 || b.DepositCount != 2 || b.Deposits != 2_700_000 || b.Net != -1_697_000 {
		t.Errorf("MB %+v", b)
	}
	if b := byBank["AGR"]; b.Gross != 500_000 || b.DepositCount != 1 || b.Deposits != 300_000 || b.Net != 200_000 {
		t.Errorf("AGR %+v", b)
	}
	if tot := rep.BankTotals[0]; tot.Deposits != 3_000_000 || tot.DepositCount != 3 || tot.Net != -1_497_000 {
		t.Errorf("bank total %+v", tot)
	}
	for _, p := range rep.PostOffices {
		if p.TillOpening+p.Replenished-p.Collected-p.CashOut+p.CashIn+p.OverShort+p.Other != p.TillClosing || p.Other != 0 {
			t.Errorf("till of %s does not add up: %+v", p.PostOffice, p)
		}
	}
	if p := rep.PostOffices[0]; p.PostOffice != "LS-001" || p.CashIn != 2_300_000 || p.DepositCount != 2 || p.CashOut != 1_000_000 {
		t.Errorf("LS-001 %+v", p)
	}
	if p := rep.PostOffices[1]; p.PostOffice != "LS-002" || p.CashIn != 700_000 || p.DepositCount != 1 {
		t.Errorf("LS-002 %+v", p)
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"bank,2025-06-02,false,MB,,1,1000000,3000,-1697000,0,-1697000,,,,,,,,,VND,2,2700000",
		"post_office,2025-06-02,false,,LS-001,1,,,,,,10000000,0,0,1000000,0,0,11300000,,VND,2,2300000",
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("CSV lacks %q:\n%s", want, buf.String())
		}
	}
	mustCheck(t, pool)
}
