package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/iso/banksim"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/recon"
	atmswitch "github.com/softatm/softatm/switch"
)

// testClock is real time moved to a chosen instant: it runs at real speed
// (leases, timeouts and the outbox's polling behave as they do), and set
// jumps it, so that a test walks business days and cut-offs.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = time.Until(at)
}

// ict is Vietnam's zone, every cut-off's.
var ict = time.FixedZone("ICT", 7*3600)

// mbCutoff is MB's cut-off in the business-day tests: 17:00:00.
var mbCutoff = ledger.Cutoff{Hour: 17}

// startSystemAt is startSystem with the switch and the simulator on clk,
// MB's cut-off at 17:00:00 (AGR keeps 23:59:59), and the simulator playing
// both banks with the same cut-offs.
func startSystemAt(t *testing.T, clk *testClock) *system {
	t.Helper()
	return startSystemWith(t, systemOpts{
		clock:   clk.now,
		simOpts: []banksim.Option{banksim.WithBankCutoff("MB", mbCutoff.Hour, mbCutoff.Minute, mbCutoff.Second)},
		setup:   func(ctx context.Context, a *admin) error { return a.bankCutoff(ctx, "MB", "17:00:00") },
	})
}

// demoCustomer is a demo account with its bank's credentials and phone.
type demoCustomer struct {
	bank, account, last4 string
}

var (
	mbAn    = demoCustomer{"MB", "9704000000000011", "5611"}
	mbBinh  = demoCustomer{"MB", "9704000000000029", "5629"}
	agrDung = demoCustomer{"AGR", "9704050000000015", "4315"}
	agrEm   = demoCustomer{"AGR", "9704050000000023", "4323"}
)

// pay issues a code for c through its bank's API and pays it at the
// teller's counter; it returns the withdrawal once the bank acknowledged
// the payout (completed), and the business date the switch gave it.
func (s *system) pay(t *testing.T, teller *apiStaff, c demoCustomer, amount int64) (uuid.UUID, string) {
	t.Helper()
	var b fixtures.Bank
	for _, x := range s.Demo.Banks {
		if x.Code == c.bank {
			b = x
		}
	}
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(b.ClientID, b.ClientSecret)
	hdr := map[string]string{"Authorization": req.Header.Get("Authorization"), "Idempotency-Key": uuid.NewString()}
	var v atmswitch.WithdrawalView
	status, raw := s.call(t, nil, "POST", "/v1/withdrawals", hdr, map[string]any{
		"account": c.account, "amount": amount, "currency": "VND", "holder_name": "Demo", "phone_last4": c.last4,
	}, &v)
	if status != http.StatusCreated {
		t.Fatalf("create withdrawal for %s: %d %s", c.account, status, raw)
	}
	id := teller.payByNumeric(t, v.NumericCode, c.last4)
	s.waitState(t, id, "completed")
	var day time.Time
	if err := s.Pool.QueryRow(context.Background(), `SELECT business_date FROM withdrawals WHERE id = $1`, id).Scan(&day); err != nil {
		t.Fatal(err)
	}
	return id, day.Format(time.DateOnly)
}

// rrn is the withdrawal's RRN.
func (s *system) rrn(t *testing.T, id uuid.UUID) string {
	t.Helper()
	var r string
	if err := s.Pool.QueryRow(context.Background(), `SELECT rrn FROM withdrawals WHERE id = $1`, id).Scan(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// bankFile is the simulator's settlement file of bank for date.
func (s *system) bankFile(t *testing.T, bank, date string) []byte {
	t.Helper()
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Sim.WriteBankSettlementFile(&buf, bank, d); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload posts a settlement file as the finance page does (path "" : the
// file names its bank and date), and returns the status and error code.
func (st *apiStaff) upload(t *testing.T, path string, file []byte) (int, string, string) {
	t.Helper()
	if path == "" {
		path = "/v1/finance/recon"
	}
	req, err := http.NewRequest("POST", st.sys.URL+path, bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("X-CSRF-Token", st.csrf)
	req.Header.Set("Idempotency-Key", uuid.NewString())
	resp, err := st.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

// report is the recon report of bank for date: RRN → statuses.
func (st *apiStaff) report(t *testing.T, bank, date string) map[string][]string {
	t.Helper()
	var r struct {
		Items []recon.Item `json:"items"`
	}
	if status, raw := st.sys.call(t, st.c, "GET", "/v1/finance/recon/"+bank+"/"+date, nil, nil, &r); status != http.StatusOK {
		t.Fatalf("report %s %s: %d %s", bank, date, status, raw)
	}
	out := map[string][]string{}
	for _, it := range r.Items {
		out[it.RRN] = append(out[it.RRN], string(it.Status))
	}
	return out
}

// closeDay asks to close date with reason; it returns the status and the
// error code and message.
func (st *apiStaff) closeDay(t *testing.T, date, reason string) (int, string, string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	hdr := map[string]string{"X-CSRF-Token": st.csrf, "Idempotency-Key": uuid.NewString()}
	status, _ := st.sys.call(t, st.c, "POST", "/v1/finance/days/"+date+"/close", hdr, map[string]string{"reason": reason}, &e)
	return status, e.Error.Code, e.Error.Message
}

// TestEndToEndBusinessDays walks two business days with two banks (MB cut
// at 17:00:00, AGR at 23:59:59) and three post offices: payouts before and
// after MB's cut-off land in the day the bank's file puts them in; closing
// before every bank's cut-off is refused, and with files missing needs a
// reason; each bank's file is imported by its own bank and date and every
// line matches; the file is refused for another bank or day and a second
// time. Then a doctored file forces each category: matched, duplicate,
// amount_differs, missing_at_bank, missing_at_switch, date_differs.
func TestEndToEndBusinessDays(t *testing.T) {
	t.Parallel()
	// Day 1 is tomorrow in Vietnam: the keys the demo loads now are valid.
	tomorrow := time.Now().In(ict).AddDate(0, 0, 1)
	at := func(dayOffset, h, m, s int) time.Time {
		return time.Date(tomorrow.Year(), tomorrow.Month(), tomorrow.Day()+dayOffset, h, m, s, 0, ict)
	}
	day := func(dayOffset int) string { return at(dayOffset, 12, 0, 0).Format(time.DateOnly) }
	clk := &testClock{}
	clk.set(at(0, 13, 0, 0))
	s := startSystemAt(t, clk)
	ctx := context.Background()
	fin := apiLogin(t, s, "finance", "finance-demo")
	t1 := apiLogin(t, s, "teller1", "teller1-demo") // LS-001
	t2 := apiLogin(t, s, "teller2", "teller2-demo") // LS-002
	t3 := apiLogin(t, s, "teller3", "teller3-demo") // LS-003

	// Day 1, before MB's cut-off.
	type payout struct {
		id   uuid.UUID
		date string
	}
	var p [8]payout
	p[0].id, p[0].date = s.pay(t, t1, mbAn, 500_000)
	p[1].id, p[1].date = s.pay(t, t2, agrDung, 1_000_000)
	clk.set(at(0, 13, 20, 0))
	if status, code, msg := fin.closeDay(t, day(0), "closing early"); status != http.StatusConflict || code != "day_not_over" ||
		!strings.Contains(msg, "23:59:59") {
		t.Fatalf("closing at 13:20: %d %s %q, want day_not_over naming the last cut-off", status, code, msg)
	}
	clk.set(at(0, 13, 22, 0))
	p[2].id, p[2].date = s.pay(t, t3, mbBinh, 300_000) // the payout the 13:20 close used to move
	// After MB's cut-off: MB's payout is the next day's, AGR's is not.
	clk.set(at(0, 17, 0, 30))
	p[3].id, p[3].date = s.pay(t, t1, mbAn, 200_000)
	p[4].id, p[4].date = s.pay(t, t3, agrEm, 400_000)
	for i, want := range []string{day(0), day(0), day(0), day(1), day(0)} {
		if p[i].date != want {
			t.Errorf("payout %d: business date %s, want %s", i, p[i].date, want)
		}
		// The bank's own date, from field 15 of its 0230, agrees.
		var bankDate *time.Time
		if err := s.Pool.QueryRow(ctx, `SELECT bank_business_date FROM withdrawals WHERE id = $1`, p[i].id).Scan(&bankDate); err != nil ||
			bankDate == nil || bankDate.Format(time.DateOnly) != want {
			t.Errorf("payout %d: the bank's business date %v (%v), want %s", i, bankDate, err, want)
		}
	}
	clk.set(at(0, 18, 0, 0))
	if _, code, _ := fin.closeDay(t, day(0), "MB is done"); code != "day_not_over" {
		t.Fatalf("closing at 18:00 (AGR's cut-off to come): %s, want day_not_over", code)
	}

	// Day 2, just after midnight: day 1 may close, but the banks' files
	// have not come: closing needs a reason, and says what is open.
	clk.set(at(1, 0, 0, 10))
	if _, code, msg := fin.closeDay(t, day(0), ""); code != "day_has_open_items" ||
		!strings.Contains(msg, "bank MB: 2 payout(s) awaiting") || !strings.Contains(msg, "bank AGR: 2 payout(s) awaiting") {
		t.Fatalf("closing without the files: %s %q", code, msg)
	}
	for rrn, st := range fin.report(t, "MB", day(0)) {
		if len(st) != 1 || st[0] != "awaiting_bank_file" {
			t.Errorf("before MB's file, %s is %v, want awaiting_bank_file", rrn, st)
		}
	}
	mb1 := s.bankFile(t, "MB", day(0))
	if status, code, _ := fin.upload(t, "/v1/finance/recon/AGR/"+day(0), mb1); status != http.StatusUnprocessableEntity || code != "settlement_file_other_bank" {
		t.Fatalf("MB's file as AGR's: %d %s", status, code)
	}
	if _, code, _ := fin.upload(t, "/v1/finance/recon/MB/"+day(1), mb1); code != "settlement_file_other_date" {
		t.Fatalf("day 1's file as day 2's: %s", code)
	}
	for _, bank := range []string{"MB", "AGR"} {
		if status, code, msg := fin.upload(t, "", s.bankFile(t, bank, day(0))); status != http.StatusOK {
			t.Fatalf("%s's file of day 1: %d %s %s", bank, status, code, msg)
		}
	}
	if status, code, msg := fin.upload(t, "", mb1); status != http.StatusConflict || code != "settlement_file_imported" ||
		!strings.Contains(msg, "already imported on") {
		t.Fatalf("MB's file again: %d %s %q", status, code, msg)
	}
	want1 := map[string]map[string][]string{
		"MB":  {s.rrn(t, p[0].id): {"matched"}, s.rrn(t, p[2].id): {"matched"}},
		"AGR": {s.rrn(t, p[1].id): {"matched"}, s.rrn(t, p[4].id): {"matched"}},
	}
	for bank, want := range want1 {
		if got := fin.report(t, bank, day(0)); !equalStatuses(got, want) {
			t.Errorf("%s day 1: %v, want %v", bank, got, want)
		}
	}
	if status, code, msg := fin.closeDay(t, day(0), ""); status != http.StatusOK {
		t.Fatalf("closing day 1, reconciled: %d %s %s", status, code, msg)
	}

	// Day 2: more payouts, and a doctored MB file that forces every
	// category; AGR's file matches.
	clk.set(at(1, 10, 0, 0))
	p[5].id, _ = s.pay(t, t1, mbAn, 100_000)   // duplicated in the file
	p[6].id, _ = s.pay(t, t2, mbBinh, 100_000) // another amount in the file
	p[7].id, _ = s.pay(t, t3, mbAn, 100_000)   // not in the file
	late, _ := s.pay(t, t1, mbBinh, 100_000)   // in day 3's file: date_differs
	agr2, _ := s.pay(t, t2, agrDung, 300_000)
	clk.set(at(2, 0, 0, 10))
	mb2 := strings.Split(strings.TrimSpace(string(s.bankFile(t, "MB", day(1)))), "\n")
	var doctored, moved []string
	for _, l := range mb2 {
		switch {
		case strings.HasPrefix(l, s.rrn(t, p[5].id)):
			doctored = append(doctored, l, l)
		case strings.HasPrefix(l, s.rrn(t, p[6].id)):
			doctored = append(doctored, strings.Replace(l, ",100000,", ",150000,", 1))
		case strings.HasPrefix(l, s.rrn(t, p[7].id)):
		case strings.HasPrefix(l, s.rrn(t, late)):
			moved = append(moved, l)
		default:
			doctored = append(doctored, l)
		}
	}
	doctored = append(doctored, "999999999999,999999,ZZ9999,250000,704,"+at(1, 11, 0, 0).Format(time.RFC3339)+",withdrawal")
	if status, code, msg := fin.upload(t, "", []byte(strings.Join(doctored, "\n")+"\n")); status != http.StatusOK {
		t.Fatalf("MB's doctored file of day 2: %d %s %s", status, code, msg)
	}
	day3 := "bank,business_date,cutoff\nMB," + day(2) + ",17:00:00\n" + strings.Join(recon.Header, ",") + "\n" + strings.Join(moved, "\n") + "\n"
	if status, code, msg := fin.upload(t, "", []byte(day3)); status != http.StatusOK {
		t.Fatalf("MB's file of day 3: %d %s %s", status, code, msg)
	}
	if status, code, msg := fin.upload(t, "", s.bankFile(t, "AGR", day(1))); status != http.StatusOK {
		t.Fatalf("AGR's file of day 2: %d %s %s", status, code, msg)
	}
	want2 := map[string][]string{
		s.rrn(t, p[3].id): {"matched"}, // paid after MB's cut-off on day 1
		s.rrn(t, p[5].id): {"duplicate", "matched"},
		s.rrn(t, p[6].id): {"amount_differs"},
		s.rrn(t, p[7].id): {"missing_at_bank"},
		s.rrn(t, late):    {"date_differs"},
		"999999999999":    {"missing_at_switch"},
	}
	if got := fin.report(t, "MB", day(1)); !equalStatuses(got, want2) {
		t.Errorf("MB day 2:\n got %v\nwant %v", got, want2)
	}
	if got := fin.report(t, "AGR", day(1)); !equalStatuses(got, map[string][]string{s.rrn(t, agr2): {"matched"}}) {
		t.Errorf("AGR day 2: %v", got)
	}
	// Day 2 has unresolved rows: it closes only with a reason, kept.
	if _, code, msg := fin.closeDay(t, day(1), ""); code != "day_has_open_items" || !strings.Contains(msg, "unresolved reconciliation row") {
		t.Fatalf("closing day 2 with differences: %s %q", code, msg)
	}
	if status, code, msg := fin.closeDay(t, day(1), "differences claimed with MB, ticket 88"); status != http.StatusOK {
		t.Fatalf("closing day 2 with a reason: %d %s %s", status, code, msg)
	}
	var days struct {
		Days []ledger.Day `json:"days"`
	}
	s.call(t, fin.c, "GET", "/v1/finance/days", nil, nil, &days)
	var closed2 *ledger.Day
	for i := range days.Days {
		if days.Days[i].Date.Format(time.DateOnly) == day(1) {
			closed2 = &days.Days[i]
		}
	}
	if closed2 == nil || !closed2.Closed || closed2.CloseReason != "differences claimed with MB, ticket 88" || len(closed2.OpenAtClose) == 0 {
		t.Fatalf("day 2 as listed: %+v", closed2)
	}

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

// equalStatuses compares two RRN → statuses maps, the statuses in any
// order.
func equalStatuses(got, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			return false
		}
		seen := map[string]int{}
		for _, x := range g {
			seen[x]++
		}
		for _, x := range w {
			if seen[x]--; seen[x] < 0 {
				return false
			}
		}
	}
	return true
}
