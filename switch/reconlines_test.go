package atmswitch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm/ledger/recon"
	"github.com/softatm/softatm/ledger/schema/schematest"
	atmswitch "github.com/softatm/softatm/switch"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// TestReconLines: reconciliation sees, through the switch's ReconLines,
// exactly the withdrawals of the bank whose cash was handed out on the
// day, and finds any other by its RRN; a report run through it changes
// none of the switch's rows.
func TestReconLines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := schematest.MustPool(t, switchschema.All()...)
	if _, err := pool.Exec(ctx, `INSERT INTO banks (code, name) VALUES ('MB', 'MB Bank'), ('AGR', 'Agribank')`); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	rows := []struct {
		rrn, bank string
		state     atmswitch.State
		date      string // business date, "" if none
	}{
		{"000000000003", "MB", atmswitch.StateCompleted, "2025-06-02"}, // in
		{"000000000001", "MB", atmswitch.StatePaid, "2025-06-02"},      // in
		{"000000000002", "MB", atmswitch.StateCompleted, "2025-06-01"}, // another day
		{"000000000004", "AGR", atmswitch.StatePaid, "2025-06-02"},     // another bank
		{"000000000005", "MB", atmswitch.StateCancelled, ""},           // never paid
		{"000000000006", "MB", atmswitch.StateClaimed, ""},             // not paid yet
	}
	for i, r := range rows {
		var bd any
		if r.date != "" {
			bd = r.date
		}
		_, err := pool.Exec(ctx, `INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state,
			terminal_id, stan, rrn, transmitted_at, approval_code, post_office, business_date)
			VALUES ($1, $2, '0123456789', $3, 'VND', $4, 'KLS00101', $5, $6, now(), 'A00001', 'LS-001', $7::DATE)`,
			uuid.New(), r.bank, int64(100_000*(i+1)), string(r.state), fmt.Sprintf("%06d", i+1), r.rrn, bd)
		if err != nil {
			t.Fatal(err)
		}
	}
	// Deposits: one credited on the day (in), one credited the day before,
	// one whose credit is still in flight (not in).
	for i, d := range []struct {
		rrn   string
		state atmswitch.State
		date  any
	}{
		{"000000000007", atmswitch.StateDepCredited, "2025-06-02"},
		{"000000000008", atmswitch.StateDepCredited, "2025-06-01"},
		{"000000000009", atmswitch.StateDepCrediting, nil},
	} {
		_, err := pool.Exec(ctx, `INSERT INTO withdrawals (id, kind, bank_code, account_number, amount, currency, state,
			terminal_id, stan, rrn, transmitted_at, approval_code, post_office, credit_date)
			VALUES ($1, 'deposit', 'MB', '0123456789', 300000, 'VND', $2, 'KLS00101', $3, $4, now(), 'D00001', 'LS-001', $5::DATE)`,
			uuid.New(), string(d.state), fmt.Sprintf("%06d", 7+i), d.rrn, d.date)
		if err != nil {
			t.Fatal(err)
		}
	}
	lines := atmswitch.NewReconLines(pool)

	got, err := lines.Lines(ctx, "MB", day)
	if err != nil {
		t.Fatal(err)
	}
	var rrns []string
	for _, l := range got {
		rrns = append(rrns, l.RRN)
		if l.Bank != "MB" || !l.BusinessDate.Equal(day) || l.WithdrawalID == uuid.Nil || l.Currency != "VND" {
			t.Errorf("line %+v", l)
		}
	}
	if fmt.Sprint(rrns) != "[000000000001 000000000003 000000000007]" {
		t.Fatalf("lines of MB on %s: %v, want the paid and the completed withdrawal and the credited deposit of the day, in RRN order", day.Format(time.DateOnly), rrns)
	}
	if l, ok, err := lines.ByRRN(ctx, "000000000005"); err != nil || !ok || l.State != string(atmswitch.StateCancelled) || !l.BusinessDate.IsZero() {
		t.Fatalf("by RRN: %+v %v %v", l, ok, err)
	}
	if _, ok, err := lines.ByRRN(ctx, "000000000099"); err != nil || ok {
		t.Fatalf("an unknown RRN was found: %v %v", ok, err)
	}
	for bank, want := range map[string]bool{"MB": true, "NOPE": false} {
		if known, err := lines.KnownBank(ctx, bank); err != nil || known != want {
			t.Fatalf("bank %s known %v (%v), want %v", bank, known, err, want)
		}
	}

	// The whole report, as cmd wires it.
	var before string
	snapshot := `SELECT string_agg(id::TEXT || state || amount::TEXT || COALESCE(business_date::TEXT, ''), ',' ORDER BY id) FROM withdrawals`
	if err := pool.QueryRow(ctx, snapshot).Scan(&before); err != nil {
		t.Fatal(err)
	}
	store := recon.New(pool, lines)
	file := strings.Join(recon.Header, ",") + "\n" +
		"000000000001,000002,A00001,200000,VND,2025-06-02T09:00:00+07:00,withdrawal\n" +
		"000000000005,000005,A00001,500000,VND,2025-06-02T09:00:00+07:00,withdrawal\n" +
		"000000000007,000007,D00001,300000,VND,2025-06-02T10:00:00+07:00,deposit\n"
	if _, err := store.Import(ctx, "MB", day, "MB.csv", []byte(file)); err != nil {
		t.Fatal(err)
	}
	items, err := store.Report(ctx, "MB", day)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]recon.Status{}
	for _, it := range items {
		status[it.RRN] = it.Status
		if it.RRN == "000000000005" && !strings.Contains(it.Detail, "cancelled") {
			t.Errorf("missing at switch does not say what the switch has: %+v", it)
		}
	}
	want := map[string]recon.Status{"000000000001": recon.StatusMatched, "000000000003": recon.StatusMissingAtBank,
		"000000000005": recon.StatusMissingAtSwitch, "000000000007": recon.StatusMatched}
	if fmt.Sprint(status) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", status, want)
	}
	var after string
	if err := pool.QueryRow(ctx, snapshot).Scan(&after); err != nil || after != before {
		t.Fatalf("the report changed the switch's rows (%v)", err)
	}
}
