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

// TestLogsHoldNoSecrets runs withdrawals, refusals and failed logins with
// every log line captured (debug level, switch and bank simulator), then
// looks for anything that must never be logged: a full account number, a
// password, a client secret, the numeric-code secret, a QR payload or a
// numeric code.
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

	// Refusals that carry secrets in the request.
	s.call(t, nil, "POST", "/v1/staff/login", nil, map[string]string{"username": "teller1", "password": "wrong-password-42"}, nil)
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth("mb-app", "not-the-secret-123456")
	s.call(t, nil, "POST", "/v1/withdrawals", map[string]string{"Authorization": req.Header.Get("Authorization"), "Idempotency-Key": uuid.NewString()},
		map[string]any{"account": "9704000000000011", "amount": 100_000, "phone_last4": "5611"}, nil)
	s.Sim.SetFault("9704000000000037", banksim.Fault{Kind: banksim.FaultDrop})
	s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{"account": "9704000000000037", "amount": 100_000, "phone_last4": "5637"}, nil)

	out := logs.String()
	if len(out) == 0 {
		t.Fatal("nothing was logged; the scan would prove nothing")
	}
	secrets := []string{"test-secret", "wrong-password-42", "not-the-secret-123456",
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
