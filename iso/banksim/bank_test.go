package banksim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
)

// TestSettlementFilePerBankAndCutoff: the file is the bank's, dated by its
// cut-off: a capture at 17:00:00 is in the day, one at 17:00:01 in the
// next; the replies' field 15 agrees with the file; another bank's
// captures are never in it.
func TestSettlementFilePerBankAndCutoff(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)} // 17:00:00 local
	s, p := newSim(t, clk, WithBank("MB"), WithCutoff(17, 0, 0))
	if s.Bank() != "MB" || s.Cutoff() != "17:00:00" {
		t.Fatalf("bank %q cut-off %q", s.Bank(), s.Cutoff())
	}
	capture := func(amount int64) string {
		t.Helper()
		req := auth(t, acct, amount, clk.now())
		r := p.roundTrip(req)
		a := p.roundTrip(advice(t, iso.MTIAdvice, req, r.ApprovalCode))
		if a.ResponseCode != iso.RCApproved {
			t.Fatalf("capture %s", a.ResponseCode)
		}
		return a.SettlementDate
	}
	if f15 := capture(100_000); f15 != "0314" {
		t.Fatalf("field 15 at the cut-off: %q", f15)
	}
	clk.add(time.Second)
	if f15 := capture(200_000); f15 != "0315" {
		t.Fatalf("field 15 past the cut-off: %q", f15)
	}
	// A deposit credited past the cut-off is in the next day's file too.
	stan := nextSTAN()
	dep, err := iso.CreditRequest{STAN: stan, RRN: "DEP000" + stan, TransmittedAt: clk.now(), Account: acct, Amount: 300_000,
		Currency: iso.CurrencyVND, TerminalID: "KIOSK001", CardAcceptor: "LS-001", AcceptorName: "Buu dien"}.Message(iso.DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.roundTrip(dep); r.ResponseCode != iso.RCApproved {
		t.Fatalf("deposit: %s", r.ResponseCode)
	}
	file := func(day time.Time) []string {
		t.Helper()
		var buf bytes.Buffer
		if err := s.WriteSettlementFile(&buf, day); err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	d14 := file(time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC))
	if len(d14) != 4 || d14[1] != "MB,2025-03-14,17:00:00" || !strings.Contains(d14[3], ",100000,") {
		t.Fatalf("14 March:\n%s", strings.Join(d14, "\n"))
	}
	d15 := file(time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC))
	if len(d15) != 5 || d15[1] != "MB,2025-03-15,17:00:00" || !strings.Contains(d15[3], ",200000,") ||
		!strings.HasPrefix(d15[4], "DEP000"+stan+",") || !strings.HasSuffix(d15[4], ",300000,704,2025-03-14T17:00:01+07:00,deposit") {
		t.Fatalf("15 March:\n%s", strings.Join(d15, "\n"))
	}
	var other bytes.Buffer
	if err := s.WriteBankSettlementFile(&other, "VCB", time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(other.String()), "\n"); n != 2 {
		t.Fatalf("VCB's file holds MB's captures:\n%s", other.String())
	}
	if SettlementFileName("MB", time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)) != "settlement-MB-2025-03-14.csv" {
		t.Fatal("file name")
	}
}
