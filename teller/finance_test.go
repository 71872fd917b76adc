package teller

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema"
	"github.com/softatm/softatm/ledger/schema/schematest"
	atmswitch "github.com/softatm/softatm/switch"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

var ict = time.FixedZone("ICT", 7*3600)

// financeDay is the business day the finance tests book into.
const financeDay = "2025-06-02"

// financeServer serves the finance handlers of this file without the
// session and idempotency middleware (cmd/softatm tests those with the
// routes): the ledger is on a database of the test's own, its clock at
// 10:00 on financeDay, with tills LS-001 and LS-002 and bank MB in 704.
func financeServer(t *testing.T) (*httptest.Server, *ledger.Ledger) {
	t.Helper()
	pool := schematest.MustPool(t, schema.Ledger)
	now := time.Date(2025, 6, 2, 10, 0, 0, 0, ict)
	l := ledger.New(pool, ledger.WithClock(func() time.Time { return now }))
	t.Cleanup(l.Close)
	ctx := context.Background()
	for _, a := range []struct {
		code  string
		flags ledger.Flags
	}{
		{ledger.ReceivableCode("MB"), 0}, {ledger.AccountInFlight, 0}, {ledger.AccountSettlement, 0}, {ledger.AccountFees, 0},
		{ledger.TillCode("LS-001"), ledger.FlagCreditsMustNotExceedDebits},
		{ledger.TillCode("LS-002"), ledger.FlagCreditsMustNotExceedDebits},
	} {
		if err := l.EnsureAccount(ctx, a.code, "704", a.flags); err != nil {
			t.Fatal(err)
		}
	}
	f := &Finance{API: &API{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, Ledger: l, Now: func() time.Time { return now }}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/finance/days/{date}/settlement", f.Settlement)
	mux.HandleFunc("POST /v1/finance/tills/{po}/replenish", f.Replenish)
	mux.HandleFunc("POST /v1/finance/tills/{po}/collect", f.Collect)
	mux.HandleFunc("POST /v1/finance/tills/{po}/count", f.Count)
	mux.HandleFunc("POST /v1/finance/days/{date}/banks/{bank}/settle", f.SettleBank)
	mux.HandleFunc("GET /v1/finance/forecast", f.Forecast)
	mux.HandleFunc("GET /v1/finance/words", f.WordsHandler)
	mux.HandleFunc("POST /v1/teller/till/count", func(w http.ResponseWriter, r *http.Request) {
		f.TellerCount(w, r, atmswitch.Teller{Username: "teller2", PostOffice: "LS-002"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, l
}

// call sends a JSON body (with an Idempotency-Key) and returns the status
// and the answer's body.
func call(t *testing.T, srv *httptest.Server, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", uuid.NewString())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// mustCall fails unless the call answers want; the error code is checked
// for refusals.
func mustCall(t *testing.T, srv *httptest.Server, method, path string, body any, want int, wantCode string) []byte {
	t.Helper()
	status, out := call(t, srv, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, out, want)
	}
	if wantCode != "" {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := json.Unmarshal(out, &e); err != nil || e.Error.Code != wantCode {
			t.Fatalf("%s %s: %s, want error code %s", method, path, out, wantCode)
		}
	}
	return out
}

func tillBalance(t *testing.T, l *ledger.Ledger, po string) int64 {
	t.Helper()
	a, err := l.Account(context.Background(), ledger.TillCode(po))
	if err != nil {
		t.Fatal(err)
	}
	return a.DebitsPosted - a.CreditsPosted
}

// TestFinanceTillDay: replenish and collect from the finance page's API, a
// payout in between, the teller's count short by 50.000 ₫: the settlement
// report (JSON) and its CSV add up to the same numbers, with an over/short
// line of 50.000 ₫ and totals rows in VND. Lying inputs (a post office with
// no till, more cash out than the till holds, a reference reused for
// another amount, a second count) are refused and change nothing.
func TestFinanceTillDay(t *testing.T) {
	t.Parallel()
	srv, l := financeServer(t)
	ctx := context.Background()
	base := "/v1/finance/tills/LS-001/"

	mustCall(t, srv, "POST", base+"replenish", map[string]any{"amount": 60_000_000, "reference": "DLV-0042"}, 200, "")
	mustCall(t, srv, "POST", base+"replenish", map[string]any{"amount": 60_000_000, "reference": "DLV-0042"}, 200, "") // the same delivery again
	mustCall(t, srv, "POST", base+"replenish", map[string]any{"amount": 70_000_000, "reference": "DLV-0042"}, 409, "conflict")
	mustCall(t, srv, "POST", "/v1/finance/tills/LS-0001/replenish", map[string]any{"amount": 1, "reference": "X"}, 404, "not_found")
	mustCall(t, srv, "POST", base+"replenish", map[string]any{"amount": 1, "reference": "bad ref"}, 400, "invalid_request")
	mustCall(t, srv, "POST", base+"replenish", map[string]any{"amount": 0, "reference": "Z"}, 422, "invalid_amount")
	if got := tillBalance(t, l, "LS-001"); got != 60_000_000 {
		t.Fatalf("till after replenishing: %d, want 60000000 (booked once)", got)
	}

	// A payout of 1.700.000 ₫ at LS-001, as the switch books it.
	wid := uuid.New()
	if _, err := l.Commit(ctx, ledger.Unit{Transfers: []ledger.Transfer{ledger.HoldTransfer(wid, "MB", 1_700_000, "704")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, ledger.Unit{Transfers: ledger.PayoutTransfers(wid, "MB", "LS-001", 1_700_000, 0, "704")}); err != nil {
		t.Fatal(err)
	}

	mustCall(t, srv, "POST", base+"collect", map[string]any{"amount": 58_300_001, "reference": "COL-1"}, 409, "till_insufficient")
	mustCall(t, srv, "POST", base+"collect", map[string]any{"amount": 20_000_000, "reference": "COL-1"}, 200, "")
	expected := int64(60_000_000 - 1_700_000 - 20_000_000)
	if got := tillBalance(t, l, "LS-001"); got != expected {
		t.Fatalf("till before the count: %d, want %d", got, expected)
	}

	mustCall(t, srv, "POST", base+"count", map[string]any{}, 400, "invalid_request")
	mustCall(t, srv, "POST", base+"count", map[string]any{"counted": -5}, 422, "invalid_amount")
	out := mustCall(t, srv, "POST", base+"count", map[string]any{"counted": expected - 50_000}, 200, "")
	var tc ledger.TillCount
	if err := json.Unmarshal(out, &tc); err != nil || tc.Difference != -50_000 || tc.Expected != expected {
		t.Fatalf("count answer %s (%v)", out, err)
	}
	mustCall(t, srv, "POST", base+"count", map[string]any{"counted": expected}, 409, "conflict") // counted twice
	// The teller counts LS-002 (no cash: nothing to differ) from the kiosk.
	mustCall(t, srv, "POST", "/v1/teller/till/count", map[string]any{"counted": 0}, 200, "")

	var rep ledger.Report
	if err := json.Unmarshal(mustCall(t, srv, "GET", "/v1/finance/days/"+financeDay+"/settlement", nil, 200, ""), &rep); err != nil {
		t.Fatal(err)
	}
	var p ledger.PostOfficeTotal
	for _, x := range rep.PostOffices {
		if x.PostOffice == "LS-001" {
			p = x
		}
	}
	if p.Replenished != 60_000_000 || p.Collected != 20_000_000 || p.CashOut != 1_700_000 || p.OverShort != -50_000 ||
		p.TillOpening != 0 || p.TillClosing != expected-50_000 || p.Counted == nil || *p.Counted != expected-50_000 ||
		p.Currency != "VND" {
		t.Fatalf("LS-001 on the report: %+v", p)
	}
	if p.TillOpening+p.Replenished-p.Collected-p.CashOut+p.OverShort+p.Other != p.TillClosing {
		t.Fatalf("LS-001 does not add up: %+v", p)
	}
	if len(rep.PostOfficeTotals) != 1 || rep.PostOfficeTotals[0].OverShort != -50_000 || *rep.PostOfficeTotals[0].Counted != expected-50_000 {
		t.Fatalf("post office totals %+v", rep.PostOfficeTotals)
	}

	// The CSV holds the same numbers as the page's JSON, and totals.
	status, body := call(t, srv, "GET", "/v1/finance/days/"+financeDay+"/settlement?format=csv", nil)
	if status != 200 {
		t.Fatalf("CSV: %d %s", status, body)
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
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
			t.Fatalf("%s in %v: %v", name, rec, err)
		}
		return v
	}
	rows := map[string][]string{}
	for _, rec := range recs[1:] {
		rows[rec[col["kind"]]+"/"+rec[col["post_office"]]+rec[col["bank"]]] = rec
		if rec[col["currency"]] != "VND" {
			t.Errorf("currency %q in %v", rec[col["currency"]], rec)
		}
	}
	for key, want := range map[string]ledger.PostOfficeTotal{"post_office/LS-001": p, "post_office_total/": rep.PostOfficeTotals[0]} {
		rec := rows[key]
		if rec == nil {
			t.Fatalf("no CSV row %s in %v", key, recs)
		}
		if num(rec, "till_opening") != want.TillOpening || num(rec, "replenished") != want.Replenished ||
			num(rec, "collected") != want.Collected || num(rec, "cash_out") != want.CashOut ||
			num(rec, "over_short") != want.OverShort || num(rec, "other") != want.Other ||
			num(rec, "till_closing") != want.TillClosing || num(rec, "counted") != *want.Counted {
			t.Errorf("CSV row %v differs from the page's %+v", rec, want)
		}
	}
	if rows["bank_total/"] == nil || num(rows["bank_total/"], "net") != rep.BankTotals[0].Net {
		t.Errorf("CSV bank total %v, page %+v", rows["bank_total/"], rep.BankTotals)
	}
}

// TestFinanceSettleBank: a bank's payment recorded from the page shows as
// settled, and outstanding is what is still owed; the same payment twice
// is booked once, its reference with another amount and an unknown bank
// are refused.
func TestFinanceSettleBank(t *testing.T) {
	t.Parallel()
	srv, l := financeServer(t)
	ctx := context.Background()
	if err := l.Replenish(ctx, "LS-001", 10_000_000, "704", uuid.New()); err != nil {
		t.Fatal(err)
	}
	for _, amount := range []int64{2_000_000, 500_000} {
		wid := uuid.New()
		if _, err := l.Commit(ctx, ledger.Unit{Transfers: []ledger.Transfer{ledger.HoldTransfer(wid, "MB", amount, "704")}}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Commit(ctx, ledger.Unit{Transfers: ledger.PayoutTransfers(wid, "MB", "LS-001", amount, 3_000, "704")}); err != nil {
			t.Fatal(err)
		}
	}
	path := "/v1/finance/days/" + financeDay + "/banks/MB/settle"
	type answer struct {
		Bank ledger.BankTotal `json:"bank"`
	}
	var a answer
	for range 2 { // the same payment entered twice is booked once
		if err := json.Unmarshal(mustCall(t, srv, "POST", path, map[string]any{"amount": 2_000_000, "reference": "MB-FT-0001"}, 200, ""), &a); err != nil {
			t.Fatal(err)
		}
	}
	want := ledger.BankTotal{Bank: "MB", Count: 2, Gross: 2_500_000, Fees: 6_000, Net: 2_506_000, Settled: 2_000_000,
		Outstanding: 506_000, Currency: "VND"}
	if a.Bank != want {
		t.Fatalf("after the first payment: %+v, want %+v", a.Bank, want)
	}
	mustCall(t, srv, "POST", path, map[string]any{"amount": 2_000_001, "reference": "MB-FT-0001"}, 409, "conflict")
	mustCall(t, srv, "POST", "/v1/finance/days/"+financeDay+"/banks/XX/settle", map[string]any{"amount": 1, "reference": "R"}, 404, "not_found")
	mustCall(t, srv, "POST", "/v1/finance/days/2025-13-01/banks/MB/settle", map[string]any{"amount": 1, "reference": "R"}, 400, "invalid_request")
	if err := json.Unmarshal(mustCall(t, srv, "POST", path, map[string]any{"amount": 506_000, "reference": "MB-FT-0002"}, 200, ""), &a); err != nil {
		t.Fatal(err)
	}
	if a.Bank.Settled != 2_506_000 || a.Bank.Outstanding != 0 {
		t.Fatalf("after the second payment: %+v", a.Bank)
	}
	var rep ledger.Report
	if err := json.Unmarshal(mustCall(t, srv, "GET", "/v1/finance/days/"+financeDay+"/settlement", nil, 200, ""), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Banks) != 1 || rep.Banks[0] != a.Bank || rep.BankTotals[0].Outstanding != 0 {
		t.Fatalf("report banks %+v totals %+v", rep.Banks, rep.BankTotals)
	}
}

// payAt books a paid withdrawal of amount at po at time at.
func payAt(t *testing.T, l *ledger.Ledger, po string, amount int64, at time.Time) {
	t.Helper()
	ctx := context.Background()
	wid := uuid.New()
	if _, err := l.Commit(ctx, ledger.Unit{At: at, Transfers: []ledger.Transfer{ledger.HoldTransfer(wid, "MB", amount, "704")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, ledger.Unit{At: at, Transfers: ledger.PayoutTransfers(wid, "MB", po, amount, 0, "704")}); err != nil {
		t.Fatal(err)
	}
}

// TestFinanceForecast: a post office that paid 1.000.000 ₫ every day for
// eight weeks and 400.000 ₫ so far today, with 3.600.000 ₫ left in its
// till, is expected to pay 1.000.000 ₫ a day, to run short on the fifth
// day, and is suggested a 5.000.000 ₫ replenishment; the CSV says the same.
func TestFinanceForecast(t *testing.T) {
	t.Parallel()
	srv, l := financeServer(t)
	ctx := context.Background()
	today := time.Date(2025, 6, 2, 9, 0, 0, 0, ict)
	if _, err := l.Commit(ctx, ledger.Unit{At: today.AddDate(0, 0, -60), Transfers: []ledger.Transfer{{ID: uuid.New(),
		Debit: ledger.TillCode("LS-001"), Credit: ledger.AccountSettlement, Amount: 60_000_000, Currency: "704", Kind: ledger.KindSingle}}}); err != nil {
		t.Fatal(err)
	}
	for i := 56; i >= 1; i-- {
		payAt(t, l, "LS-001", 1_000_000, today.AddDate(0, 0, -i))
	}
	payAt(t, l, "LS-001", 400_000, today)

	type answer struct {
		Today       string               `json:"today"`
		Method      string               `json:"method"`
		PostOffices []PostOfficeForecast `json:"post_offices"`
	}
	var a answer
	if err := json.Unmarshal(mustCall(t, srv, "GET", "/v1/finance/forecast", nil, 200, ""), &a); err != nil {
		t.Fatal(err)
	}
	if a.Today != financeDay || a.Method == "" || len(a.PostOffices) != 2 {
		t.Fatalf("forecast %+v", a)
	}
	p := a.PostOffices[0]
	if p.PostOffice != "LS-001" || p.Balance != 3_600_000 || p.Currency != "VND" || len(p.Days) != 7 {
		t.Fatalf("LS-001 %+v", p)
	}
	for i, d := range p.Days {
		if d.Expected != 1_000_000 {
			t.Errorf("day %d: expected %d", i, d.Expected)
		}
	}
	if p.Days[0].Remaining != 600_000 || p.Total != 6_600_000 || p.Suggested != 5_000_000 ||
		p.RunsShort.Format(time.DateOnly) != "2025-06-06" || p.HistoryDays < 56 {
		t.Errorf("LS-001: remaining today %d, total %d, suggested %d, runs short %v, history %d",
			p.Days[0].Remaining, p.Total, p.Suggested, p.RunsShort, p.HistoryDays)
	}
	if q := a.PostOffices[1]; q.PostOffice != "LS-002" || q.Total != 0 || !q.RunsShort.IsZero() || q.Suggested != 0 {
		t.Errorf("LS-002 (no history, no cash) %+v", q)
	}

	status, body := call(t, srv, "GET", "/v1/finance/forecast?format=csv", nil)
	if status != 200 {
		t.Fatalf("CSV: %d %s", status, body)
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+14 {
		t.Fatalf("%d CSV records", len(recs))
	}
	want := []string{"LS-001", "2025-06-06", "Friday", "1000000", "1000000", "false", "-1000000", "2025-06-06", "5000000", "VND"}
	if got := recs[5]; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("CSV row %v, want %v", got, want)
	}
}
