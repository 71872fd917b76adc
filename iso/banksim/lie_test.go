package banksim

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
)

// mismatch returns the fields in which reply differs from req, by the
// client's own check.
func mismatch(t *testing.T, req, reply *iso.Message) string {
	t.Helper()
	err := iso.CheckReply(req, reply)
	if err == nil {
		return ""
	}
	var me *iso.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("CheckReply: %v", err)
	}
	return strings.Join(me.Fields, ",")
}

// TestReplyLies: each reply_* fault set on an account answers that
// account's 0100 with exactly one field changed (approved, with an approval
// code), holds on the request's account under its RRN the amount the reply
// states, and answers the reversal that follows honestly, releasing it.
func TestReplyLies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, field string
		check       func(req, reply *iso.Message) bool
		held        int64
	}{
		{FaultReplyAmount, "4", func(req, r *iso.Message) bool { return r.Amount == "000000055000" }, 55_000},
		{FaultReplyRRN, "37", func(req, r *iso.Message) bool { return len(r.RRN) == 12 }, 110_000},
		{FaultReplyAccount, "102", func(req, r *iso.Message) bool { return r.Account == acct[:15]+"2" }, 110_000},
		{FaultReplyCurrency, "49", func(req, r *iso.Message) bool { return r.Currency == "840" }, 110_000},
		{FaultReplyProc, "3", func(req, r *iso.Message) bool { return r.ProcessingCode == "310000" }, 110_000},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			s, p := newSim(t, nil)
			s.SetFault(acct, Fault{Kind: tc.kind})
			req := auth(t, acct, 110_000, time.Now())
			r := p.roundTrip(req)
			if got := mismatch(t, req, r); got != tc.field || !tc.check(req, r) {
				t.Fatalf("reply differs in %q, want %s: %v", got, tc.field, r)
			}
			if r.ResponseCode != iso.RCApproved || len(r.ApprovalCode) != 6 {
				t.Fatalf("not an approval: %v", r)
			}
			h := s.Holds()
			if len(h) != 1 || h[0].Amount != tc.held || h[0].RRN != req.RRN || h[0].Account != acct || h[0].State != HoldHeld {
				t.Fatalf("holds %+v, want %d held under the request's RRN", h, tc.held)
			}
			if a, _ := s.Account(acct); a.Held != tc.held {
				t.Fatalf("account holds %d, want %d", a.Held, tc.held)
			}
			// The switch's reversal of the 0100 (no approval code: it never
			// accepted the 0110) gets an honest 0430 and releases the hold.
			rev := advice(t, iso.MTIReversal, req, "")
			rr := p.roundTrip(rev)
			if got := mismatch(t, rev, rr); got != "" || rr.ResponseCode != iso.RCApproved {
				t.Fatalf("0430 differs in %q, rc %s", got, rr.ResponseCode)
			}
			if a, _ := s.Account(acct); a.Held != 0 {
				t.Fatalf("held %d after the reversal", a.Held)
			}
		})
	}
}

// TestReplyLiesByMTI: chosen by MTI (here through the control endpoint), a
// reply fault lies in the reply to that MTI: the 0230, the 0810. The books
// follow the request: the advice captures the amount it carried.
func TestReplyLiesByMTI(t *testing.T) {
	t.Parallel()
	s, p := newSim(t, nil)
	srv := httptest.NewServer(s.ControlHandler())
	defer srv.Close()
	post := func(body string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: status %d", body, resp.StatusCode)
		}
	}
	post(`{"mti":"0220","kind":"reply_amount"}`)
	post(`{"mti":"0800","kind":"reply_rrn"}`)
	post(`{"account":"` + limited + `","kind":"reply_currency"}`)

	req := auth(t, acct, 110_000, time.Now())
	r := p.roundTrip(req)
	if got := mismatch(t, req, r); got != "" || r.ResponseCode != iso.RCApproved {
		t.Fatalf("0110 with only a 0220 fault differs in %q, rc %s", got, r.ResponseCode)
	}
	adv := advice(t, iso.MTIAdvice, req, r.ApprovalCode)
	ar := p.roundTrip(adv)
	if got := mismatch(t, adv, ar); got != "4" || ar.Amount != "000000055000" || ar.ResponseCode != iso.RCApproved {
		t.Fatalf("0230 differs in %q: %v", got, ar)
	}
	if a, _ := s.Account(acct); a.Balance != 10_000_000-110_000 || a.Held != 0 {
		t.Fatalf("after the advice: %+v, want 110,000 captured", a)
	}
	echo := &iso.Message{MTI: iso.MTINetworkRequest, STAN: nextSTAN(), TransmissionDateTime: "0101000000", NetworkCode: iso.NetworkEcho}
	er := p.roundTrip(echo)
	if got := mismatch(t, echo, er); got != "37" {
		t.Fatalf("0810 differs in %q: %v", got, er)
	}
	lreq := auth(t, limited, 1_000, time.Now())
	if got := mismatch(t, lreq, p.roundTrip(lreq)); got != "49" {
		t.Fatalf("0110 for the account with reply_currency differs in %q", got)
	}
}

// TestRefuseModes: advice_refuse answers the account's 0220 and 0221 with a
// refusal and captures nothing; reversal_refuse (set through the control
// endpoint with its own response code) does the same to 0420s; neither
// touches the other messages of the account.
func TestRefuseModes(t *testing.T) {
	t.Parallel()
	s, p := newSim(t, nil)
	srv := httptest.NewServer(s.ControlHandler())
	defer srv.Close()
	approve := func(amount int64) (*iso.Message, string) {
		t.Helper()
		req := auth(t, acct, amount, time.Now())
		r := p.roundTrip(req)
		if r.ResponseCode != iso.RCApproved {
			t.Fatalf("0100 under a refuse fault: rc %s", r.ResponseCode)
		}
		return req, r.ApprovalCode
	}
	expect := func(what string, m *iso.Message, rc string) {
		t.Helper()
		r := p.roundTrip(m)
		if r.ResponseCode != rc {
			t.Fatalf("%s: rc %s, want %s", what, r.ResponseCode, rc)
		}
		if got := mismatch(t, m, r); got != "" {
			t.Fatalf("%s: the refusal differs from its request in %s", what, got)
		}
	}
	held := func() int64 { a, _ := s.Account(acct); return a.Held }

	s.SetFault(acct, Fault{Kind: FaultAdviceRefuse})
	req, code := approve(100_000)
	expect("0220", advice(t, iso.MTIAdvice, req, code), iso.RCDoNotHonour)
	expect("0221", advice(t, iso.MTIAdviceRepeat, req, code), iso.RCDoNotHonour)
	if held() != 100_000 {
		t.Fatalf("held %d: a refused advice captured", held())
	}
	s.SetFault(acct, Fault{})
	expect("0220 once the bank accepts", advice(t, iso.MTIAdvice, req, code), iso.RCApproved)
	if a, _ := s.Account(acct); a.Held != 0 || a.Balance != 9_900_000 {
		t.Fatalf("after capture: %+v", a)
	}

	for body, status := range map[string]int{
		`{"account":"` + acct + `","kind":"reversal_refuse","response_code":"00"}`: http.StatusBadRequest,
		`{"account":"` + acct + `","kind":"reversal_refuse","response_code":"9"}`:  http.StatusBadRequest,
		`{"account":"` + acct + `","kind":"reversal_refuse","response_code":"96"}`: http.StatusNoContent,
	} {
		resp, err := http.Post(srv.URL+"/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d, want %d", body, resp.StatusCode, status)
		}
	}
	req2, code2 := approve(200_000)
	expect("0420", advice(t, iso.MTIReversal, req2, code2), iso.RCSystemError)
	expect("0421", advice(t, iso.MTIReversalRepeat, req2, ""), iso.RCSystemError)
	if held() != 200_000 {
		t.Fatalf("held %d: a refused reversal released", held())
	}
	expect("0220 under reversal_refuse", advice(t, iso.MTIAdvice, req2, code2), iso.RCApproved)
	if states := fmt.Sprint(holdStates(s)); states != "[captured captured]" {
		t.Fatalf("holds %s", states)
	}
}

func holdStates(s *Sim) []string {
	var out []string
	for _, h := range s.Holds() {
		out = append(out, h.State)
	}
	return out
}
