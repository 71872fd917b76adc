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
			if softatm.ErrorCode(err) != softatm.EInvalid || !strings.Contains(err.Error(), c.errLine) {
				t.Fatalf("error %v, want EInvalid naming %q", err, c.errLine)
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
			if softatm.ErrorCode(err) != softatm.EInvalid {
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
	first, err := s.Import(ctx, "MB", day, "MB-20250602.csv", content)
	if err != nil {
		t.Fatal(err)
	}
	if first.Repeated || first.Lines != 7 || first.NewLines != 7 {
		t.Fatalf("first import %+v", first)
	}
	again, err := s.Import(ctx, "MB", day, "renamed.csv", content)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Repeated || again.FileID != first.FileID || again.Name != first.Name || !again.ImportedAt.Equal(first.ImportedAt) {
		t.Fatalf("second import %+v, want the first %+v", again, first)
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
		"000000000003": {StatusAmountMismatch},
		"000000000004": {StatusFieldMismatch},
		"000000000005": {StatusMissingAtBank},
		"000000000006": {StatusMissingAtSwitch},
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
				t.Errorf("missing at switch item does not say where the switch has it: %+v", it)
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
		if it.Status == StatusAmountMismatch {
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
	if err != nil || res.Repeated || res.NewLines != 1 {
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
	if softatm.ErrorCode(err) != softatm.EInvalid {
		t.Fatalf("bad file: %v", err)
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
