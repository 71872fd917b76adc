package banksim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
)

const (
	acct    = "9704000000000011"
	limited = "9704000000000044"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSim(t *testing.T, clk *clock, extra ...Option) (*Sim, *peer) {
	t.Helper()
	opts := []Option{WithLogger(quiet)}
	if clk != nil {
		opts = append(opts, WithClock(clk.now))
	}
	s := New([]Account{
		{Number: acct, Bank: "MB", Balance: 10_000_000},
		{Number: limited, Bank: "MB", Balance: 10_000_000, DailyLimit: 1_000_000},
	}, append(opts, extra...)...)
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, &peer{t: t, c: c, r: bufio.NewReader(c)}
}

// peer is a bare ISO 8583 peer on a raw socket, to send what the client
// never would.
type peer struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (p *peer) send(m *iso.Message) {
	p.t.Helper()
	b, err := iso.Pack(m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := iso.WriteFrame(p.c, b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) recv() *iso.Message {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, _, err := iso.ReadMessage(p.r)
	if err != nil {
		p.t.Fatal(err)
	}
	return m
}

func (p *peer) roundTrip(m *iso.Message) *iso.Message {
	p.t.Helper()
	p.send(m)
	r := p.recv()
	if r.STAN != m.STAN || r.MTI != iso.ResponseMTI(m.MTI) {
		p.t.Fatalf("reply %s/%s to %s/%s", r.MTI, r.STAN, m.MTI, m.STAN)
	}
	return r
}

var stanSeq atomic.Int64

func nextSTAN() string { return fmt.Sprintf("%06d", stanSeq.Add(1)) }

func auth(t *testing.T, account string, amount int64, at time.Time) *iso.Message {
	t.Helper()
	stan := nextSTAN()
	m, err := iso.AuthRequest{
		STAN: stan, RRN: "RRN000" + stan, TransmittedAt: at, Account: account, Amount: amount,
		Currency: iso.CurrencyVND, TerminalID: "KIOSK001", CardAcceptor: "LS-001", AcceptorName: "Buu dien",
	}.Message(iso.DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func advice(t *testing.T, mti string, req *iso.Message, code string) *iso.Message {
	t.Helper()
	m := *req
	m.MTI, m.ApprovalCode = mti, code
	m.STAN = nextSTAN()
	m.OriginalData = "0100" + req.STAN + req.TransmissionDateTime + "00000970400" + "00000000000"
	return &m
}

func TestFormatAndInvalidTransaction(t *testing.T) {
	t.Parallel()
	s, p := newSim(t, nil)
	now := time.Now()
	for name, tc := range map[string]struct {
		mut  func(*iso.Message)
		want string
	}{
		"no amount":          {func(m *iso.Message) { m.Amount = "" }, iso.RCFormatError},
		"no account":         {func(m *iso.Message) { m.Account = "" }, iso.RCFormatError},
		"letters in amount":  {func(m *iso.Message) { m.Amount = "00000000100A" }, iso.RCFormatError},
		"bad field 7":        {func(m *iso.Message) { m.TransmissionDateTime = "1399999999" }, iso.RCFormatError},
		"balance inquiry":    {func(m *iso.Message) { m.ProcessingCode = "310000" }, iso.RCInvalidTransaction},
		"wrong currency":     {func(m *iso.Message) { m.Currency = "840" }, iso.RCInvalidTransaction},
		"account in field 2": {func(m *iso.Message) { m.PAN, m.Account = m.Account, "" }, iso.RCApproved},
	} {
		m := auth(t, acct, 1_000, now)
		tc.mut(m)
		if r := p.roundTrip(m); r.ResponseCode != tc.want {
			t.Errorf("%s: rc %s, want %s", name, r.ResponseCode, tc.want)
		}
	}

	req := auth(t, acct, 1_000, now)
	r := p.roundTrip(req)
	if r.ResponseCode != iso.RCApproved || len(r.ApprovalCode) != 6 || r.RRN != req.RRN || r.TerminalID != req.TerminalID || r.SettlementDate == "" {
		t.Fatalf("approval %+v", r)
	}
	noAmount := advice(t, iso.MTIAdvice, req, r.ApprovalCode)
	noAmount.Amount = ""
	if got := p.roundTrip(noAmount).ResponseCode; got != iso.RCFormatError {
		t.Errorf("0220 without amount: %s", got)
	}
	wrongAmount := advice(t, iso.MTIAdvice, req, r.ApprovalCode)
	wrongAmount.Amount = "000000000999"
	if got := p.roundTrip(wrongAmount).ResponseCode; got != iso.RCInvalidAmount {
		t.Errorf("0220 with another amount: %s", got)
	}
	wrongRRN := advice(t, iso.MTIAdvice, req, r.ApprovalCode)
	wrongRRN.RRN = "OTHER0000000"
	if got := p.roundTrip(wrongRRN).ResponseCode; got != iso.RCInvalidTransaction {
		t.Errorf("0220 with another RRN: %s", got)
	}
	no90 := advice(t, iso.MTIReversal, req, "")
	no90.OriginalData = ""
	if got := p.roundTrip(no90).ResponseCode; got != iso.RCFormatError {
		t.Errorf("0420 without field 90: %s", got)
	}
	// By original STAN alone (no approval code, unknown RRN).
	byOrig := advice(t, iso.MTIReversal, req, "")
	byOrig.RRN = "UNKNOWN00000"
	if got := p.roundTrip(byOrig).ResponseCode; got != iso.RCApproved {
		t.Errorf("0420 by original STAN: %s", got)
	}
	if h := s.Holds(); h[len(h)-1].State != HoldReleased {
		t.Errorf("hold %+v not released by original STAN", h[len(h)-1])
	}

	// An MTI we do not serve gets no reply; a malformed frame is counted;
	// the connection stays usable.
	p.send(&iso.Message{MTI: "0200", STAN: "999999"})
	if err := iso.WriteFrame(p.c, []byte("0800ZZ")); err != nil {
		t.Fatal(err)
	}
	echo := &iso.Message{MTI: iso.MTINetworkRequest, STAN: "123456", TransmissionDateTime: "0101000000", NetworkCode: iso.NetworkEcho}
	if r := p.roundTrip(echo); r.ResponseCode != iso.RCApproved || r.NetworkCode != iso.NetworkEcho {
		t.Fatalf("echo %+v", r)
	}
	echo.NetworkCode = "999"
	if r := p.roundTrip(echo); r.ResponseCode != iso.RCInvalidTransaction {
		t.Fatalf("unknown network code %+v", r)
	}
	if s.Received("0200") != 1 || s.Received("malformed") != 1 {
		t.Fatalf("received 0200 %d, malformed %d", s.Received("0200"), s.Received("malformed"))
	}
}

func TestDailyLimitRollsOverAtLocalMidnight(t *testing.T) {
	t.Parallel()
	// 23:00 in Vietnam.
	clk := &clock{t: time.Date(2025, 3, 14, 16, 0, 0, 0, time.UTC)}
	s, p := newSim(t, clk)
	req := auth(t, limited, 800_000, clk.now())
	r := p.roundTrip(req)
	if r.ResponseCode != iso.RCApproved {
		t.Fatalf("first %s", r.ResponseCode)
	}
	if got := p.roundTrip(advice(t, iso.MTIAdvice, req, r.ApprovalCode)).ResponseCode; got != iso.RCApproved {
		t.Fatalf("capture %s", got)
	}
	if got := p.roundTrip(auth(t, limited, 300_000, clk.now())).ResponseCode; got != iso.RCExceedsLimit {
		t.Fatalf("same day: %s", got)
	}
	clk.add(90 * time.Minute) // 00:30 next day
	if got := p.roundTrip(auth(t, limited, 300_000, clk.now())).ResponseCode; got != iso.RCApproved {
		t.Fatalf("next day: %s", got)
	}
	a, _ := s.Account(limited)
	if a.WithdrawnToday != 0 || a.Held != 300_000 || a.Balance != 9_200_000 {
		t.Fatalf("state %+v", a)
	}
}

func TestSettlementFile(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2025, 3, 14, 2, 0, 0, 0, time.UTC)} // 09:00 local
	s, p := newSim(t, clk)
	capture := func(amount int64) {
		t.Helper()
		req := auth(t, acct, amount, clk.now())
		r := p.roundTrip(req)
		if got := p.roundTrip(advice(t, iso.MTIAdvice, req, r.ApprovalCode)).ResponseCode; got != iso.RCApproved {
			t.Fatalf("capture %s", got)
		}
	}
	capture(100_000)
	clk.add(time.Hour)
	capture(200_000)
	p.roundTrip(auth(t, acct, 50_000, clk.now())) // held, never captured
	clk.add(15 * time.Hour)                       // 01:00 next local day
	capture(300_000)

	var buf bytes.Buffer
	if err := s.WriteSettlementFile(&buf, time.Date(2025, 3, 14, 12, 0, 0, 0, iso.LocalZone)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 || lines[0] != "bank,business_date,cutoff" || lines[1] != "MB,2025-03-14,23:59:59" ||
		lines[2] != "rrn,stan,approval_code,amount,currency,transaction_time,type" {
		t.Fatalf("file:\n%s", buf.String())
	}
	lines = lines[2:]
	h := s.Holds()
	want := h[0].RRN + "," + h[0].STAN + "," + h[0].ApprovalCode + ",100000,704,2025-03-14T09:00:00+07:00,withdrawal"
	if lines[1] != want || !strings.Contains(lines[2], ",200000,704,2025-03-14T10:00:00+07:00,") {
		t.Fatalf("lines:\n%s\nwant first:\n%s", buf.String(), want)
	}
}

func TestControlHandler(t *testing.T) {
	t.Parallel()
	s, p := newSim(t, nil)
	srv := httptest.NewServer(s.ControlHandler())
	defer srv.Close()
	do := func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, bad := range []string{`{"kind":"explode"}`, `{"kind":"drop","delay_ms":-1}`, `{"kind":"drop","mti":"01"}`, `{"kind":"drop","extra":1}`, `not json`} {
		if r := do("POST", "/faults", bad); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d", bad, r.StatusCode)
		}
	}
	if r := do("POST", "/faults", `{"account":"`+acct+`","kind":"unavailable"}`); r.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", r.StatusCode)
	}
	if got := p.roundTrip(auth(t, acct, 1_000, time.Now())).ResponseCode; got != iso.RCIssuerUnavailable {
		t.Fatalf("with fault: %s", got)
	}
	do("POST", "/faults", `{"mti":"0100","kind":"malfunction"}`)
	if got := p.roundTrip(auth(t, limited, 1_000, time.Now())).ResponseCode; got != iso.RCSystemError {
		t.Fatalf("with MTI fault: %s", got)
	}
	if r := do("DELETE", "/faults", ""); r.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", r.StatusCode)
	}
	if got := p.roundTrip(auth(t, acct, 1_000, time.Now())).ResponseCode; got != iso.RCApproved {
		t.Fatalf("after clearing: %s", got)
	}

	var accounts []map[string]any
	if err := json.NewDecoder(do("GET", "/accounts", "").Body).Decode(&accounts); err != nil || len(accounts) != 2 || accounts[0]["held"].(float64) != 1_000 {
		t.Fatalf("accounts %v %v", accounts, err)
	}
	body, _ := io.ReadAll(do("GET", "/holds", "").Body)
	if strings.Contains(string(body), acct) || !strings.Contains(string(body), iso.Mask(acct)) {
		t.Fatalf("holds must show masked accounts: %s", body)
	}
}

func FuzzParseFaultRequest(f *testing.F) {
	f.Add([]byte(`{"account":"9704000000000011","kind":"delay","delay_ms":500}`))
	f.Add([]byte(`{"mti":"0220","kind":"drop"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"account":"9704000000000011","kind":"advice_refuse","response_code":"96"}`))
	f.Add([]byte(`{"kind":"reply_amount"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFaultRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !faultKinds[fr.Kind] || fr.DelayMs < 0 || fr.DelayMs > faultDelayMaxMs || (fr.MTI != "" && len(fr.MTI) != 4) {
			t.Fatalf("accepted %+v", fr)
		}
		if rc := fr.ResponseCode; rc != "" && (len(rc) != 2 || rc == iso.RCApproved || !allDigits(rc)) {
			t.Fatalf("accepted response code %q", rc)
		}
	})
}

// TestReversalBeforeItsRequest: a 0420 that overtakes its 0100 (the switch
// gave up waiting) is remembered, and the 0100 arriving after it places no
// hold that nobody would ever release.
func TestReversalBeforeItsRequest(t *testing.T) {
	t.Parallel()
	s, p := newSim(t, nil)
	req := auth(t, acct, 100_000, time.Now())
	if r := p.roundTrip(advice(t, iso.MTIReversal, req, "")); r.ResponseCode != iso.RCApproved {
		t.Fatalf("reversal of an unseen request: %s", r.ResponseCode)
	}
	if r := p.roundTrip(req); r.ResponseCode != iso.RCDuplicate {
		t.Fatalf("request after its reversal: %s, want 94", r.ResponseCode)
	}
	if len(s.Holds()) != 0 {
		t.Fatalf("holds %+v, want none", s.Holds())
	}
	if a, _ := s.Account(acct); a.Held != 0 {
		t.Fatalf("held %d", a.Held)
	}
}
