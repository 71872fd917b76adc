package ledger

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	softatm "github.com/softatm/softatm"
)

// iso704 is VND as the switch books it (ISO 4217 numeric, field 49): the
// report must show it as VND.
const iso704 = "704"

// mustTillLedger is a ledger whose clock stands at 10:00 ICT on day, with
// accounts in currency 704 for banks MB, VCB and tills LS-001, LS-002.
func mustTillLedger(t *testing.T, day time.Time) (*Ledger, context.Context) {
	t.Helper()
	now := time.Date(day.Year(), day.Month(), day.Day(), 10, 0, 0, 0, ict)
	l := New(mustPool(t), WithClock(func() time.Time { return now }))
	t.Cleanup(l.Close)
	ctx := context.Background()
	for _, a := range []struct {
		code  string
		flags Flags
	}{
		{ReceivableCode("MB"), 0}, {ReceivableCode("VCB"), 0}, {AccountInFlight, 0}, {AccountSettlement, 0},
		{TillCode("LS-001"), FlagCreditsMustNotExceedDebits}, {TillCode("LS-002"), FlagCreditsMustNotExceedDebits},
	} {
		if err := l.EnsureAccount(ctx, a.code, iso704, a.flags); err != nil {
			t.Fatal(err)
		}
	}
	return l, ctx
}

// pay books a paid withdrawal at po on the ledger's day: hold, then payout.
func pay(t *testing.T, l *Ledger, bank, po string, amount int64) {
	t.Helper()
	id := uuid.New()
	ctx := context.Background()
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{HoldTransfer(id, bank, amount, iso704)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, Unit{Transfers: PayoutTransfers(id, bank, po, amount, 0, iso704)}); err != nil {
		t.Fatal(err)
	}
}

// tillAddsUp fails unless p's figures add up to its closing balance.
func tillAddsUp(t *testing.T, p PostOfficeTotal) {
	t.Helper()
	if got := p.TillOpening + p.Replenished - p.Collected - p.CashOut + p.OverShort + p.Other; got != p.TillClosing {
		t.Errorf("%s: opening %d + replenished %d − collected %d − paid %d + over/short %d + other %d = %d, closing %d",
			p.PostOffice, p.TillOpening, p.Replenished, p.Collected, p.CashOut, p.OverShort, p.Other, got, p.TillClosing)
	}
}

// TestTillThreeWay: replenish, pay, collect, count short by 50.000 ₫: the
// report and its CSV add up, the over/short line is 50.000 ₫, and the till
// holds what the teller counted.
func TestTillThreeWay(t *testing.T) {
	t.Parallel()
	day := civilDate(2025, 6, 2)
	l, ctx := mustTillLedger(t, day)
	// Opening cash, booked the day before.
	if _, err := l.Commit(ctx, Unit{At: time.Date(2025, 6, 1, 9, 0, 0, 0, ict), Transfers: []Transfer{{ID: uuid.New(),
		Debit: TillCode("LS-001"), Credit: AccountSettlement, Amount: 10_000_000, Currency: iso704, Kind: KindSingle}}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Replenish(ctx, "LS-001", 50_000_000, iso704, uuid.New()); err != nil {
		t.Fatal(err)
	}
	pay(t, l, "MB", "LS-001", 1_200_000)
	pay(t, l, "VCB", "LS-001", 500_000)
	collectID := uuid.New()
	if err := l.Collect(ctx, "LS-001", 20_000_000, iso704, collectID); err != nil {
		t.Fatal(err)
	}
	if err := l.Collect(ctx, "LS-001", 20_000_000, iso704, collectID); err != nil { // a retry: no-op
		t.Fatal(err)
	}
	expected := int64(10_000_000 + 50_000_000 - 1_700_000 - 20_000_000)
	countID := uuid.New()
	tc, err := l.Count(ctx, "LS-001", expected-50_000, "teller1", countID)
	if err != nil {
		t.Fatal(err)
	}
	if tc.Expected != expected || tc.Difference != -50_000 || !tc.BusinessDate.Equal(day) || tc.Currency != iso704 {
		t.Fatalf("count %+v", tc)
	}
	if a := mustAccount(t, l, TillCode("LS-001")); a.DebitsPosted-a.CreditsPosted != expected-50_000 {
		t.Fatalf("till holds %d after the count, want the counted %d", a.DebitsPosted-a.CreditsPosted, expected-50_000)
	}
	if a := mustAccount(t, l, OverShortCode("LS-001")); a.DebitsPosted != 50_000 || a.CreditsPosted != 0 {
		t.Fatalf("over/short account %+v, want debited 50000", a)
	}

	rep, err := l.Settlement(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.PostOffices) != 1 {
		t.Fatalf("post offices %+v", rep.PostOffices)
	}
	p := rep.PostOffices[0]
	want := PostOfficeTotal{PostOffice: "LS-001", Count: 2, TillOpening: 10_000_000, Replenished: 50_000_000,
		Collected: 20_000_000, CashOut: 1_700_000, OverShort: -50_000, TillClosing: expected - 50_000,
		CountedBy: "teller1", Currency: "VND"}
	got := p
	got.Counted = nil
	if got != want || p.Counted == nil || *p.Counted != expected-50_000 {
		t.Fatalf("LS-001:\n%+v (counted %v)\nwant\n%+v", got, p.Counted, want)
	}
	tillAddsUp(t, p)
	if len(rep.PostOfficeTotals) != 1 || rep.PostOfficeTotals[0].TillClosing != p.TillClosing ||
		rep.PostOfficeTotals[0].OverShort != -50_000 || *rep.PostOfficeTotals[0].Counted != *p.Counted {
		t.Fatalf("post office totals %+v", rep.PostOfficeTotals)
	}
	wantBanks := map[string]int64{"MB": 1_200_000, "VCB": 500_000}
	for _, b := range rep.Banks {
		if b.Gross != wantBanks[b.Bank] || b.Currency != "VND" || b.Outstanding != b.Net {
			t.Errorf("bank %+v", b)
		}
	}
	if len(rep.BankTotals) != 1 || rep.BankTotals[0].Gross != 1_700_000 || rep.BankTotals[0].Count != 2 {
		t.Errorf("bank totals %+v", rep.BankTotals)
	}

	// The CSV: the same numbers, a totals row per kind, VND.
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	num := func(rec []string, name string) int64 {
		t.Helper()
		v, err := strconv.ParseInt(rec[col[name]], 10, 64)
		if err != nil {
			t.Fatalf("column %s of %v: %v", name, rec, err)
		}
		return v
	}
	kinds := map[string][]string{}
	for _, rec := range recs[1:] {
		kinds[rec[col["kind"]]] = rec
		if rec[col["currency"]] != "VND" {
			t.Errorf("currency %q in %v, want VND", rec[col["currency"]], rec)
		}
	}
	for _, k := range []string{"post_office", "post_office_total"} {
		rec := kinds[k]
		if rec == nil {
			t.Fatalf("no %s row in\n%v", k, recs)
		}
		if num(rec, "till_opening")+num(rec, "replenished")-num(rec, "collected")-num(rec, "cash_out")+
			num(rec, "over_short")+num(rec, "other") != num(rec, "till_closing") {
			t.Errorf("%s row does not add up: %v", k, rec)
		}
		if num(rec, "over_short") != -50_000 || num(rec, "counted") != *p.Counted || num(rec, "till_closing") != p.TillClosing ||
			num(rec, "replenished") != p.Replenished || num(rec, "collected") != p.Collected || num(rec, "cash_out") != p.CashOut {
			t.Errorf("%s row %v differs from the report %+v", k, rec, p)
		}
	}
	if rec := kinds["bank_total"]; rec == nil || num(rec, "gross") != 1_700_000 || num(rec, "outstanding") != 1_700_000 {
		t.Errorf("bank_total row %v", rec)
	}

	// The forecast's history: payouts and deliveries per till and day (the
	// collection and the count are neither).
	hist, err := l.TillHistory(ctx, civilDate(2025, 5, 1), day)
	if err != nil {
		t.Fatal(err)
	}
	wantHist := []TillDay{{PostOffice: "LS-001", Date: civilDate(2025, 6, 1), Replenished: 10_000_000},
		{PostOffice: "LS-001", Date: day, PaidOut: 1_700_000, Replenished: 50_000_000}}
	if len(hist) != 2 || hist[0] != wantHist[0] || hist[1] != wantHist[1] {
		t.Errorf("till history %+v, want %+v", hist, wantHist)
	}
	if tills, err := l.Tills(ctx); err != nil || len(tills) != 2 || tills[0].Code != TillCode("LS-001") {
		t.Errorf("tills %+v, %v", tills, err)
	}

	// A till is counted once a business day: a second count changes nothing.
	_, err = l.Count(ctx, "LS-001", expected, "teller2", uuid.New())
	wantCode(t, err, softatm.EConflict)
	// The same count again is the first count.
	again, err := l.Count(ctx, "LS-001", expected-50_000, "teller1", countID)
	if err != nil || again.ID != countID || again.Difference != -50_000 {
		t.Fatalf("count retried: %+v, %v", again, err)
	}
	_, err = l.Count(ctx, "LS-001", expected, "teller1", countID) // the same id with another figure
	wantCode(t, err, softatm.EConflict)
	if a := mustAccount(t, l, OverShortCode("LS-001")); a.DebitsPosted != 50_000 || a.CreditsPosted != 0 {
		t.Fatalf("over/short account after the refused counts %+v", a)
	}
	var n int
	if err := l.pool.QueryRow(ctx, `SELECT count(*) FROM till_counts`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d till counts, %v", n, err)
	}
	mustCheck(t, l.pool)
}

// TestTillCountOverAndRefusals: a count above the ledger books the excess
// to over/short the other way; bad input is refused and changes nothing.
func TestTillCountOverAndRefusals(t *testing.T) {
	t.Parallel()
	day := civilDate(2025, 6, 2)
	l, ctx := mustTillLedger(t, day)
	if err := l.Replenish(ctx, "LS-002", 1_000_000, iso704, uuid.New()); err != nil {
		t.Fatal(err)
	}
	wantCode(t, l.Collect(ctx, "LS-002", 1_000_001, iso704, uuid.New()), softatm.ETillShort)
	wantCode(t, l.Collect(ctx, "LS-009", 1, iso704, uuid.New()), softatm.ENotFound)
	wantCode(t, l.Collect(ctx, "LS-002", 0, iso704, uuid.New()), softatm.EInvalidAmount)
	_, err := l.Count(ctx, "LS-002", -1, "teller", uuid.New())
	wantCode(t, err, softatm.EInvalidAmount)
	_, err = l.Count(ctx, "LS-009", 0, "teller", uuid.New())
	wantCode(t, err, softatm.ENotFound)
	_, err = l.Count(ctx, "LS-002", 0, "", uuid.New())
	wantCode(t, err, softatm.EInvalid)

	tc, err := l.Count(ctx, "LS-002", 1_020_000, "teller", uuid.New())
	if err != nil || tc.Difference != 20_000 {
		t.Fatalf("count %+v, %v", tc, err)
	}
	rep, err := l.Settlement(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.PostOffices[0]
	if p.OverShort != 20_000 || p.TillClosing != 1_020_000 || p.Replenished != 1_000_000 || *p.Counted != 1_020_000 {
		t.Fatalf("LS-002 %+v", p)
	}
	tillAddsUp(t, p)
	if a := mustAccount(t, l, OverShortCode("LS-002")); a.CreditsPosted != 20_000 || a.DebitsPosted != 0 {
		t.Fatalf("over/short %+v", a)
	}
	// The next business day has its own count.
	l.opt.clock = func() time.Time { return time.Date(2025, 6, 3, 10, 0, 0, 0, ict) }
	if tc, err := l.Count(ctx, "LS-002", 1_020_000, "teller", uuid.New()); err != nil || tc.Difference != 0 ||
		!tc.BusinessDate.Equal(civilDate(2025, 6, 3)) {
		t.Fatalf("next day's count %+v, %v", tc, err)
	}
	mustCheck(t, l.pool)
}

// TestExpectSeesBatchMates: a unit's Expect is checked against the batch's
// view, so a till moved by an earlier unit of the same batch refuses a
// unit that expected the balance before it (the count a payout overtook),
// and only that unit.
func TestExpectSeesBatchMates(t *testing.T) {
	t.Parallel()
	l, _ := mustLedger(t)
	ctx := context.Background()
	if err := l.Replenish(ctx, "LS-001", 1_000, vnd, uuid.New()); err != nil {
		t.Fatal(err)
	}
	till := TillCode("LS-001")
	payout := Unit{Transfers: []Transfer{single(uuid.New(), AccountSettlement, till, 100)}}
	stale := Unit{Expect: []Expect{{Account: till, Posted: 1_000}},
		Transfers: []Transfer{single(uuid.New(), AccountFees, till, 7)}}
	fresh := Unit{Expect: []Expect{{Account: till, Posted: 900}},
		Transfers: []Transfer{single(uuid.New(), AccountFees, till, 9)}}
	errs := oneBatch(ctx, l, []Unit{payout, stale, fresh})
	if errs[0] != nil || !errors.Is(errs[1], ErrBalanceMoved) || softatm.ErrorCode(errs[1]) != softatm.EConflict || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	if a := mustAccount(t, l, till); a.DebitsPosted-a.CreditsPosted != 891 {
		t.Fatalf("till %+v, want 891 (the stale unit refused)", a)
	}
	mustCheck(t, l.pool)
}
