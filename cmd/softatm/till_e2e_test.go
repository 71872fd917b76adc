package main

import (
	"context"
	"encoding/csv"
	"net/http"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/ledger"
	atmswitch "github.com/softatm/softatm/switch"
)

// TestEndToEndTillDay walks a till's day through the real server (sessions,
// roles, CSRF, idempotency keys): finance replenishes and collects, a
// payout in between, the teller counts 50.000 ₫ short from the kiosk's
// API; the report and its CSV add up, with an over/short line of 50.000 ₫;
// a second count, a teller on finance's routes and finance on the
// teller's count are refused; the ledger's invariants hold.
func TestEndToEndTillDay(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := context.Background()
	fin := s.login(t, "finance", "finance-demo")
	tel := s.login(t, "teller1", "teller1-demo")

	var days struct {
		Today string `json:"today"`
	}
	if status, raw := s.call(t, fin.c, "GET", "/v1/finance/days", nil, nil, &days); status != http.StatusOK {
		t.Fatalf("days: %d %s", status, raw)
	}
	report := func() ledger.PostOfficeTotal {
		t.Helper()
		var rep ledger.Report
		if status, raw := s.call(t, fin.c, "GET", "/v1/finance/days/"+days.Today+"/settlement", nil, nil, &rep); status != http.StatusOK {
			t.Fatalf("settlement: %d %s", status, raw)
		}
		for _, p := range rep.PostOffices {
			if p.PostOffice == "LS-001" {
				return p
			}
		}
		t.Fatalf("no LS-001 in %+v", rep)
		return ledger.PostOfficeTotal{}
	}
	before := report()

	// A teller may not move a till's cash from finance's routes.
	if status, raw := s.call(t, tel.c, "POST", "/v1/finance/tills/LS-001/replenish", tel.headers(""),
		map[string]any{"amount": 1_000_000, "reference": "DLV-X"}, nil); status != http.StatusForbidden {
		t.Fatalf("teller replenishing: %d %s, want 403", status, raw)
	}
	// The same replenishment sent twice with its key is booked once.
	key := uuid.NewString()
	for range 2 {
		if status, raw := s.call(t, fin.c, "POST", "/v1/finance/tills/LS-001/replenish", fin.headers(key),
			map[string]any{"amount": 50_000_000, "reference": "DLV-0042"}, nil); status != http.StatusOK {
			t.Fatalf("replenish: %d %s", status, raw)
		}
	}
	wd := s.createWithdrawal(t, "9704000000000011", 500_000)
	apiLogin(t, s, "teller1", "teller1-demo").payByNumeric(t, wd.NumericCode, "5611")
	if status, raw := s.call(t, fin.c, "POST", "/v1/finance/tills/LS-001/collect", fin.headers(""),
		map[string]any{"amount": 10_000_000, "reference": "COL-0001"}, nil); status != http.StatusOK {
		t.Fatalf("collect: %d %s", status, raw)
	}
	mid := report()
	if mid.Replenished != before.Replenished+50_000_000 || mid.Collected != before.Collected+10_000_000 ||
		mid.CashOut != before.CashOut+500_000 || mid.Counted != nil {
		t.Fatalf("LS-001 before %+v, after %+v", before, mid)
	}

	// Finance may not count from the kiosk's route; the teller counts.
	if status, raw := s.call(t, fin.c, "POST", "/v1/teller/till/count", fin.headers(""),
		map[string]any{"counted": 0}, nil); status != http.StatusForbidden {
		t.Fatalf("finance on the teller's count: %d %s, want 403", status, raw)
	}
	var tc ledger.TillCount
	if status, raw := s.call(t, tel.c, "POST", "/v1/teller/till/count", tel.headers(""),
		map[string]any{"counted": mid.TillClosing - 50_000}, &tc); status != http.StatusOK || tc.Difference != -50_000 || tc.CountedBy != "teller1" {
		t.Fatalf("teller's count: %d %s", status, raw)
	}
	var e apiError
	if status, _ := s.call(t, fin.c, "POST", "/v1/finance/tills/LS-001/count", fin.headers(""),
		map[string]any{"counted": mid.TillClosing}, &e); status != http.StatusConflict || e.Error.Code != "conflict" {
		t.Fatalf("second count: %d %+v, want 409 conflict", status, e)
	}

	p := report()
	if p.OverShort != -50_000 || p.Counted == nil || *p.Counted != mid.TillClosing-50_000 || p.TillClosing != *p.Counted ||
		p.TillOpening+p.Replenished-p.Collected-p.CashOut+p.OverShort+p.Other != p.TillClosing {
		t.Fatalf("LS-001 after the count %+v", p)
	}
	req, err := http.NewRequest("GET", s.URL+"/v1/finance/days/"+days.Today+"/settlement?format=csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := fin.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	recs, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	var row, total []string
	for _, r := range recs[1:] {
		if r[col["currency"]] != "VND" {
			t.Errorf("currency %q in %v", r[col["currency"]], r)
		}
		switch {
		case r[col["kind"]] == "post_office" && r[col["post_office"]] == "LS-001":
			row = r
		case r[col["kind"]] == "post_office_total":
			total = r
		}
	}
	if row == nil || total == nil {
		t.Fatalf("CSV without the LS-001 or the totals row:\n%v", recs)
	}
	for name, want := range map[string]int64{"over_short": -50_000, "till_closing": p.TillClosing, "counted": *p.Counted,
		"replenished": p.Replenished, "collected": p.Collected, "cash_out": p.CashOut} {
		if got, err := strconv.ParseInt(row[col[name]], 10, 64); err != nil || got != want {
			t.Errorf("CSV %s = %q, the page says %d", name, row[col[name]], want)
		}
	}
	if got, _ := strconv.ParseInt(total[col["over_short"]], 10, 64); got != -50_000 {
		t.Errorf("CSV total over_short %q", total[col["over_short"]])
	}

	// `softatm admin check`: the ledger's invariants, then the switch's.
	for _, run := range []func(context.Context, *pgxpool.Pool) ([]ledger.CheckResult, error){ledger.Check, atmswitch.Check} {
		res, err := run(ctx, s.Pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if !r.OK {
				t.Errorf("check %s: %s", r.Name, r.Detail)
			}
		}
	}
}
