package recon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	softatm "github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger/schema/schematest"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

func TestParse(t *testing.T) {
	t.Parallel()
	const head = "rrn,stan,approval_code,amount,currency,transaction_time,type\n"
	const good = "512345678901,123456,654321,2000000,VND,2025-06-02T10:15:00+07:00,withdrawal\n"
	for _, c := range []struct {
		name, in string
		lines    int
		errLine  string // "" if valid, else the "line N" the error must name
	}{
		{"header only", head, 0, ""},
		{"one line", head + good, 1, ""},
		{"crlf and bom", "\xef\xbb\xbf" + strings.ReplaceAll(head+good, "\n", "\r\n"), 1, ""},
		{"empty", "", 0, "header"},
		{"wrong header", "rrn,stan\n", 0, "line 1"},
		{"header reordered", "stan,rrn,approval_code,amount,currency,transaction_time,type\n", 0, "line 1"},
		{"too few fields", head + good + "1,2\n", 0, "line 3"},
		{"negative amount", head + strings.Replace(good, "2000000", "-2000000", 1), 0, "line 2: amount"},
		{"zero amount", head + strings.Replace(good, "2000000", "0", 1), 0, "line 2: amount"},
		{"decimal amount", head + strings.Replace(good, "2000000", "2000000.00", 1), 0, "line 2: amount"},
		{"huge amount", head + strings.Replace(good, "2000000", "99999999999999999999", 1), 0, "line 2: amount"},
		{"short stan", head + strings.Replace(good, ",123456,", ",12345,", 1), 0, "line 2: stan"},
		{"long rrn", head + strings.Replace(good, "512345678901", "5123456789012", 1), 0, "line 2: rrn"},
		{"no approval", head + strings.Replace(good, "654321", "", 1), 0, "line 2: approval_code"},
		{"lower currency", head + strings.Replace(good, "VND", "vnd", 1), 0, "line 2: currency"},
		{"bad time", head + strings.Replace(good, "2025-06-02T10:15:00+07:00", "2025-06-02 10:15", 1), 0, "line 2: transaction_time"},
		{"bad type", head + strings.Replace(good, "withdrawal", "With Drawal", 1), 0, "line 2: type"},
		{"bad quote", head + "\"5123,\n", 0, "line 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			lines, err := Parse(strings.NewReader(c.in))
			if c.errLine == "" {
				if err != nil || len(lines) != c.lines {
					t.Fatalf("%d lines, %v; want %d", len(lines), err, c.lines)
				}
				return
			}
			if softatm.ErrorCode(err) != softatm.EFileInvalid || !strings.Contains(err.Error(), c.errLine) {
				t.Fatalf("error %v, want EFileInvalid naming %q", err, c.errLine)
			}
		})
	}
	lines, err := Parse(strings.NewReader(head + good))
	if err != nil {
		t.Fatal(err)
	}
	want := Line{LineNo: 2, RRN: "512345678901", STAN: "123456", ApprovalCode: "654321", Amount: 2_000_000,
		Currency: "VND", Time: time.Date(2025, 6, 2, 3, 15, 0, 0, time.UTC), Type: "withdrawal"}
	if l := lines[0]; l.LineNo != want.LineNo || l.RRN != want.RRN || l.STAN != want.STAN || l.ApprovalCode != want.ApprovalCode ||
		l.Amount != want.Amount || l.Currency != want.Currency || !l.Time.Equal(want.Time) || l.Type != want.Type {
		t.Fatalf("line %+v, want %+v", l, want)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.csv")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := Parse(strings.NewReader(string(data)))
		if err != nil {
			if c := softatm.ErrorCode(err); c != softatm.EInvalid && c != softatm.EFileInvalid {
				t.Fatalf("error of code %s: %v", softatm.ErrorCode(err), err)
			}
			return
		}
		for _, l := range lines {
			if l.Amount <= 0 || l.LineNo < 2 || len(l.STAN) != 6 || l.RRN == "" || l.Time.IsZero() {
				t.Fatalf("accepted a bad line: %+v", l)
			}
		}
	})
}

type wd struct {
	rrn, stan, approval string
	amount              int64
	state               string
	date                string // business date, "" if none
}

// fakeSwitch is the switch's record as a list: Lines are the rows with a
// business date (only a paid withdrawal has one).
type fakeSwitch struct {
	rows  []SwitchLine
	banks []string
	// Lies, for TestReportRefusesABrokenSwitchAnswer.
	lieBank bool // Lines answers with every bank's lines
	lieDay  bool // Lines answers with a line of the day before too
	lieRRN  bool // ByRRN answers with the first row, whatever the RRN
}

func (f *fakeSwitch) Lines(_ context.Context, bank string, date time.Time) ([]SwitchLine, error) {
	var out []SwitchLine
	for _, r := range f.rows {
		if (r.Bank == bank || f.lieBank) && !r.BusinessDate.IsZero() && r.BusinessDate.Equal(date) {
			out = append(out, r)
		}
	}
	if f.lieDay && len(out) > 0 {
		l := out[0]
		l.RRN, l.BusinessDate = "000000000088", date.AddDate(0, 0, -1)
		out = append(out, l)
	}
	return out, nil
}

func (f *fakeSwitch) ByRRN(_ context.Context, rrn string) (SwitchLine, bool, error) {
	if f.lieRRN && len(f.rows) > 0 {
		return f.rows[0], true, nil
	}
	for _, r := range f.rows {
		if r.RRN == rrn {
			return r, true, nil
		}
	}
	return SwitchLine{}, false, nil
}

func (f *fakeSwitch) KnownBank(_ context.Context, bank string) (bool, error) {
	return slices.Contains(f.banks, bank), nil
}

func newFakeSwitch(t *testing.T, ws []wd) *fakeSwitch {
	t.Helper()
	f := &fakeSwitch{banks: []string{"MB", "VCB"}}
	for _, w := range ws {
		l := SwitchLine{WithdrawalID: uuid.New(), Bank: "MB", RRN: w.rrn, STAN: w.stan, ApprovalCode: w.approval,
			Amount: w.amount, Currency: "VND", State: w.state}
		if w.date != "" {
			d, err := time.Parse(time.DateOnly, w.date)
			if err != nil {
				t.Fatal(err)
			}
			l.BusinessDate = d
		}
		f.rows = append(f.rows, l)
	}
	return f
}

// mustStore returns a store on a database of the test's own with recon's
// tables only, reading the switch's record from a fake.
func mustStore(t *testing.T, ws []wd) (*Store, *pgxpool.Pool) {
	t.Helper()
	pool := schematest.MustPool(t, Migrations)
	return New(pool, newFakeSwitch(t, ws)), pool
}

// plantedSwitch is the switch's side of testdata/planted.csv.
var plantedSwitch = []wd{
	{"000000000001", "000001", "A00001", 100_000, "completed", "2025-06-02"}, // matched
	{"000000000002", "000002", "A00002", 200_000, "paid", "2025-06-02"},      // matched, then a duplicate line
	{"000000000003", "000003", "A00003", 500_000, "completed", "2025-06-02"}, // the file says 600000
	{"000000000004", "000004", "A00004", 300_000, "completed", "2025-06-02"}, // the file has another approval code
	{"000000000005", "000005", "A00005", 400_000, "completed", "2025-06-02"}, // not in the file
	{"000000000006", "000006", "A00006", 150_000, "completed", "2025-06-01"}, // in the file, paid another day
	{"000000000007", "000007", "A00007", 900_000, "cancelled", ""},           // never paid: in neither
}

func TestPlantedFile(t *testing.T) {
	t.Parallel()
	s, pool := mustStore(t, plantedSwitch)
	ctx := context.Background()
	content, err := os.ReadFile("testdata/planted.csv")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	// Before the bank's file arrives, the day's payouts await it: none
	// is missing yet, and nothing is stored.
	waiting, err := s.Report(ctx, "MB", day)
	if err != nil || len(waiting) != 5 {
		t.Fatalf("before the file: %d items, %v", len(waiting), err)
	}
	for _, it := range waiting {
		if it.Status != StatusAwaitingBankFile {
			t.Fatalf("before the file: %+v", it)
		}
	}
	first, err := s.Import(ctx, "MB", day, "MB-20250602.csv", content)
	if err != nil {
		t.Fatal(err)
	}
	if first.Lines != 7 || first.NewLines != 7 {
		t.Fatalf("first import %+v", first)
	}
	_, err = s.Import(ctx, "MB", day, "renamed.csv", content)
	if softatm.ErrorCode(err) != softatm.EFileImported || !strings.Contains(softatm.ErrorMessage(err), "already imported on "+
		first.ImportedAt.In(ictZone).Format("2006-01-02 15:04")) || !strings.Contains(softatm.ErrorMessage(err), "MB-20250602.csv") {
		t.Fatalf("second import: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM recon_lines`).Scan(&n); err != nil || n != 7 {
		t.Fatalf("%d lines stored after two imports (%v), want 7", n, err)
	}

	items, err := s.Report(ctx, "MB", day)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]Status{}
	for _, it := range items {
		got[it.RRN] = append(got[it.RRN], it.Status)
	}
	want := map[string][]Status{
		"000000000001": {StatusMatched},
		"000000000002": {StatusDuplicate, StatusMatched},
		"000000000003": {StatusAmountDiffers},
		"000000000004": {StatusFieldMismatch},
		"000000000005": {StatusMissingAtBank},
		"000000000006": {StatusDateDiffers},
		"000000000099": {StatusMissingAtSwitch},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses\n got %v\nwant %v", got, want)
	}
	for _, it := range items {
		switch it.RRN {
		case "000000000003":
			if it.BankAmount != 600_000 || it.SwitchAmount != 500_000 || it.WithdrawalID == uuid.Nil {
				t.Errorf("amount mismatch item %+v", it)
			}
		case "000000000006":
			if !strings.Contains(it.Detail, "2025-06-01") || it.WithdrawalID == uuid.Nil {
				t.Errorf("date differs item does not say where the switch has it: %+v", it)
			}
		case "000000000005":
			if it.BankAmount != 0 || it.SwitchAmount != 400_000 {
				t.Errorf("missing at bank item %+v", it)
			}
		}
		if it.Resolved {
			t.Errorf("item resolved by itself: %+v", it)
		}
	}
	if items[len(items)-1].Status != StatusMatched || items[0].Status == StatusMatched {
		t.Errorf("exceptions are not listed first: %+v", items)
	}

	// Resolving needs a reason, happens once, and survives a new report.
	var exc Item
	for _, it := range items {
		if it.Status == StatusAmountDiffers {
			exc = it
		}
	}
	if err := s.Resolve(ctx, exc.ID, "finance-1", ""); softatm.ErrorCode(err) != softatm.EInvalid {
		t.Fatalf("resolve without reason: %v", err)
	}
	if err := s.Resolve(ctx, uuid.New(), "finance-1", "x"); softatm.ErrorCode(err) != softatm.ENotFound {
		t.Fatalf("resolve unknown item: %v", err)
	}
	if err := s.Resolve(ctx, exc.ID, "finance-1", "bank confirmed 500000 by phone, ticket 42"); err != nil {
		t.Fatal(err)
	}
	if err := s.Resolve(ctx, exc.ID, "finance-2", "again"); softatm.ErrorCode(err) != softatm.EConflict {
		t.Fatalf("second resolve: %v", err)
	}
	items2, err := s.Report(ctx, "MB", day)
	if err != nil {
		t.Fatal(err)
	}
	if len(items2) != len(items) {
		t.Fatalf("%d items on the second report, want %d", len(items2), len(items))
	}
	for _, it := range items2 {
		if it.ID == exc.ID && (!it.Resolved || it.ResolvedBy != "finance-1" || it.Reason == "") {
			t.Fatalf("resolution lost: %+v", it)
		}
	}
	// A corrected file repeating the old lines adds only the new one.
	fixed := string(content) + "000000000005,000005,A00005,400000,VND,2025-06-02T09:06:00+07:00,withdrawal\n"
	res, err := s.Import(ctx, "MB", day, "MB-20250602-v2.csv", []byte(fixed))
	if err != nil || res.NewLines != 1 {
		t.Fatalf("corrected import %+v %v", res, err)
	}
	items3, err := s.Report(ctx, "MB", day)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items3 {
		if it.RRN == "000000000005" && it.Status != StatusMatched {
			t.Fatalf("after the corrected file: %+v", it)
		}
	}
}

func TestImportRefuses(t *testing.T) {
	t.Parallel()
	s, _ := mustStore(t, nil)
	ctx := context.Background()
	_, err := s.Import(ctx, "NOPE", time.Now(), "x.csv", []byte(strings.Join(Header, ",")+"\n"))
	if softatm.ErrorCode(err) != softatm.ENotFound {
		t.Fatalf("unknown bank: %v", err)
	}
	_, err = s.Import(ctx, "MB", time.Now(), "x.csv", []byte("garbage"))
	if softatm.ErrorCode(err) != softatm.EFileInvalid {
		t.Fatalf("bad file: %v", err)
	}
	good := "000000000001,000001,A00001,100000,VND,2025-06-02T09:00:00+07:00,withdrawal\n"
	ofMB := "bank,business_date,cutoff\nMB,2025-06-02,23:59:59\n" + strings.Join(Header, ",") + "\n" + good
	day := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	_, err = s.Import(ctx, "VCB", day, "x.csv", []byte(ofMB))
	if softatm.ErrorCode(err) != softatm.EFileOtherBank {
		t.Fatalf("another bank's file: %v", err)
	}
	_, err = s.Import(ctx, "MB", day.AddDate(0, 0, 1), "x.csv", []byte(ofMB))
	if softatm.ErrorCode(err) != softatm.EFileOtherDate {
		t.Fatalf("another day's file: %v", err)
	}
	_, err = s.Import(ctx, "", time.Time{}, "x.csv", []byte(strings.Join(Header, ",")+"\n"+good))
	if softatm.ErrorCode(err) != softatm.EInvalid {
		t.Fatalf("an old-layout file without bank and day: %v", err)
	}
	// Every bad line is reported with its number and reason.
	bad := ofMB + strings.Replace(good, "100000", "-5", 1) + good + "1,2\n" + strings.Replace(good, ",000001,", ",1,", 1)
	_, err = s.Import(ctx, "", time.Time{}, "x.csv", []byte(bad))
	msg := softatm.ErrorMessage(err)
	if softatm.ErrorCode(err) != softatm.EFileInvalid || !strings.Contains(msg, "3 bad line(s)") ||
		!strings.Contains(msg, "line 5: amount") || !strings.Contains(msg, "line 7: 2 fields") || !strings.Contains(msg, "line 8: stan") {
		t.Fatalf("bad lines: %v", err)
	}
	// The file's own bank and date, none given.
	res, err := s.Import(ctx, "", time.Time{}, "settlement-MB-2025-06-02.csv", []byte(ofMB))
	if err != nil || res.Bank != "MB" || !res.Date.Equal(day) || res.Lines != 1 {
		t.Fatalf("import by the file's own bank and date: %+v %v", res, err)
	}
}

// TestDateDiffersBothWays: a payout the switch dated one day and the bank
// the next (its cut-off) is date_differs on both days, not missing.
func TestDateDiffersBothWays(t *testing.T) {
	t.Parallel()
	s, _ := mustStore(t, []wd{{"000000000001", "000001", "A00001", 100_000, "completed", "2025-06-02"}})
	ctx := context.Background()
	file := func(date string, lines string) []byte {
		return []byte("bank,business_date,cutoff\nMB," + date + ",17:00:00\n" + strings.Join(Header, ",") + "\n" + lines)
	}
	if _, err := s.Import(ctx, "MB", time.Time{}, "d2.csv", file("2025-06-02", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, "MB", time.Time{}, "d3.csv",
		file("2025-06-03", "000000000001,000001,A00001,100000,VND,2025-06-02T17:00:05+07:00,withdrawal\n")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Time{time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC)} {
		items, err := s.Report(ctx, "MB", d)
		if err != nil || len(items) != 1 || items[0].Status != StatusDateDiffers {
			t.Fatalf("%s: %+v %v", d.Format(time.DateOnly), items, err)
		}
	}
}

// TestReportRefusesABrokenSwitchAnswer: the switch's answer is checked
// before anything is matched or stored.
func TestReportRefusesABrokenSwitchAnswer(t *testing.T) {
	t.Parallel()
	day := "2025-06-02"
	for _, c := range []struct {
		name string
		lie  func(f *fakeSwitch)
	}{
		{"a line of another bank", func(f *fakeSwitch) { f.rows[0].Bank = "VCB"; f.lieBank = true }},
		{"a line of another day", func(f *fakeSwitch) { f.lieDay = true }},
		{"an RRN twice", func(f *fakeSwitch) { f.rows = append(f.rows, f.rows[0]) }},
		{"a line without RRN", func(f *fakeSwitch) { f.rows[0].RRN = "" }},
		{"another RRN looked up", func(f *fakeSwitch) { f.lieRRN = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, pool := mustStore(t, []wd{
				{"000000000001", "000001", "A00001", 100_000, "completed", day},
				{"000000000002", "000002", "A00002", 200_000, "completed", day},
			})
			c.lie(s.switches.(*fakeSwitch))
			file := strings.Join(Header, ",") + "\n" +
				"000000000001,000001,A00001,100000,VND,2025-06-02T09:00:00+07:00,withdrawal\n" +
				"000000000077,000077,A00077,100000,VND,2025-06-02T09:00:00+07:00,withdrawal\n"
			d := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
			if _, err := s.Import(ctx, "MB", d, "f.csv", []byte(file)); err != nil {
				t.Fatal(err)
			}
			items, err := s.Report(ctx, "MB", d)
			if softatm.ErrorCode(err) != softatm.EInternal {
				t.Fatalf("report on a broken answer: %v %+v, want an internal error", err, items)
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM recon_items`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d items stored (%v), want none", n, err)
			}
		})
	}
}
