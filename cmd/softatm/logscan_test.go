package main

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm/iso/banksim"
)

// syncBuffer is a bytes.Buffer safe for the many goroutines that log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoSecrets runs withdrawals, refusals, failed logins and failed
// bank-client calls with every log line captured (debug level, switch and
// bank simulator), checks that each failed login and client call is logged
// (user or client, source address, reason) and counted, then looks for
// anything that must never be logged: a full account number, a password, a
// client secret, the switch's secret, a QR payload or a numeric code.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := startSystemLogging(t, &logs, func(c *ServeConfig) { c.Switch.AuthTimeout = time.Second })
	paid := s.createWithdrawal(t, "9704000000000011", 500_000)
	cancelled := s.createWithdrawal(t, "9704000000000029", 200_000)
	teller := s.login(t, "teller1", "teller1-demo")

	// A wrong phone, then the right one, by numeric code; then pay.
	s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"numeric": paid.NumericCode, "phone_last4": "0000"}, nil)
	if st, raw := s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"numeric": paid.NumericCode, "phone_last4": "5611"}, nil); st != 200 {
		t.Fatalf("numeric scan: %d %s", st, raw)
	}
	if st, raw := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""), map[string]any{"withdrawal_id": paid.ID, "id_checked": true}, nil); st != 200 {
		t.Fatalf("confirm: %d %s", st, raw)
	}
	s.call(t, nil, "POST", "/v1/withdrawals/"+cancelled.ID.String()+"/cancel", s.bankHeaders(""), nil, nil)
	s.waitState(t, paid.ID, "completed")
	eventually(t, "the reversal is answered", func() bool { return s.Sim.Received("0420") == 1 })

	// Refusals that carry secrets in the request: a wrong password, an
	// unknown user, a wrong client secret, an unknown client. Each must be
	// refused, logged with who and from where, and counted.
	for _, l := range []struct{ user, pass string }{{"teller1", "wrong-password-42"}, {"ghost-user", "ghost-password-77"}} {
		if st, raw := s.call(t, nil, "POST", "/v1/staff/login", nil, map[string]string{"username": l.user, "password": l.pass}, nil); st != http.StatusUnauthorized {
			t.Errorf("login %s with a wrong password: %d %s", l.user, st, raw)
		}
	}
	for _, c := range []struct{ id, secret string }{{"mb-app", "not-the-secret-123456"}, {"zz-app", "zz-secret-value-98765"}} {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(c.id, c.secret)
		if st, raw := s.call(t, nil, "POST", "/v1/withdrawals", map[string]string{"Authorization": req.Header.Get("Authorization"), "Idempotency-Key": uuid.NewString()},
			map[string]any{"account": "9704000000000011", "amount": 100_000, "phone_last4": "5611"}, nil); st != http.StatusUnauthorized {
			t.Errorf("client %s with a wrong secret: %d %s", c.id, st, raw)
		}
	}
	s.Sim.SetFault("9704000000000037", banksim.Fault{Kind: banksim.FaultDrop})
	s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{"account": "9704000000000037", "amount": 100_000, "phone_last4": "5637"}, nil)

	out := logs.String()
	if len(out) == 0 {
		t.Fatal("nothing was logged; the scan would prove nothing")
	}
	// The refusals are logged: who, from where, why.
	for _, want := range [][]string{
		{`msg="login refused"`, "user=teller1", "source=127.0.0.1", "reason=bad_password"},
		{`msg="login refused"`, "user=ghost-user", "source=127.0.0.1", "reason=unknown_user"},
		{`msg="bank client authentication refused"`, "client=mb-app", "source=127.0.0.1", "reason=bad_secret"},
		{`msg="bank client authentication refused"`, "client=zz-app", "source=127.0.0.1", "reason=unknown_client"},
	} {
		if !hasLine(out, want...) {
			t.Errorf("no log line with all of %q", want)
		}
	}
	// ... and counted, on the switch's /metrics (the admin listener).
	_, metrics := get(t, s.AdminURL+"/metrics")
	for _, want := range []string{
		`softatm_auth_failures_total{kind="login",reason="bad_password"} 1`,
		`softatm_auth_failures_total{kind="login",reason="unknown_user"} 1`,
		`softatm_auth_failures_total{kind="client",reason="bad_secret"} 1`,
		`softatm_auth_failures_total{kind="client",reason="unknown_client"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	secrets := []string{testSwitchSecret, "wrong-password-42", "ghost-password-77", "not-the-secret-123456", "zz-secret-value-98765",
		paid.QRPayload, cancelled.QRPayload, paid.NumericCode, cancelled.NumericCode}
	for _, a := range s.Demo.Accounts {
		secrets = append(secrets, a.Number)
	}
	for _, b := range s.Demo.Banks {
		secrets = append(secrets, b.ClientSecret)
	}
	for _, p := range s.Demo.PostOffices {
		secrets = append(secrets, p.Teller.Password)
	}
	for _, f := range s.Demo.Finance {
		secrets = append(secrets, f.Password)
	}
	for _, secret := range secrets {
		if i := strings.Index(out, secret); i >= 0 {
			line := out[strings.LastIndex(out[:i], "\n")+1:]
			if j := strings.Index(line, "\n"); j >= 0 {
				line = line[:j]
			}
			t.Errorf("a log line holds a secret (%q...): %s", secret[:min(6, len(secret))], line)
		}
	}
	if !strings.Contains(out, "0011") {
		t.Error("the masked account (last 4 digits) never appears: were the account lines logged at all?")
	}
}

// hasLine reports whether one line of logs holds every part.
func hasLine(logs string, parts ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// TestBankLinkLinesNameTheWithdrawal: the ISO link knows only STAN and RRN;
// its lines about a withdrawal's 0100 and 0220 carry the withdrawal's id
// (softatm.WithLogAttrs through serve's ContextHandler), so one withdrawal
// is followed through the switch's and the link's logs.
func TestBankLinkLinesNameTheWithdrawal(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	s := startSystemLogging(t, logs)
	v := s.createWithdrawal(t, "9704000000000011", 100_000)
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `msg="bank request"`) && strings.Contains(line, "mti=0100") {
			if !strings.Contains(line, "withdrawal="+v.ID.String()) {
				t.Fatalf("the link's 0100 line does not name withdrawal %s:\n%s", v.ID, line)
			}
			return
		}
	}
	t.Fatalf("no bank request line for the 0100 in:\n%s", logs.String())
}
