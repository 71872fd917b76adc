package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsLint runs one withdrawal end to end, scrapes /metrics of the
// running Main's admin listener and checks every family with promlint (what `promtool check
// metrics` runs), and that the operator's metrics are there.
func TestMetricsLint(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	wd := s.createWithdrawal(t, "9704000000000011", 200_000)
	teller := s.login(t, "teller1", "teller1-demo")
	if status, raw := s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"qr": wd.QRPayload}, nil); status != 200 {
		t.Fatalf("scan: %d %s", status, raw)
	}
	if status, raw := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""),
		map[string]any{"withdrawal_id": wd.ID, "id_checked": true}, nil); status != 200 {
		t.Fatalf("confirm: %d %s", status, raw)
	}
	s.waitState(t, wd.ID, "completed")

	resp, err := http.Get(s.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	text := string(body)
	for _, want := range []string{
		`softatm_http_requests_total{outcome="ok",route="POST /v1/teller/confirm"} 1`,
		`softatm_http_request_duration_seconds_bucket{route="POST /v1/withdrawals"`,
		`softatm_iso_requests_total{mti="0100",response_code="00"} 1`,
		`softatm_iso_requests_total{mti="0220",response_code="00"} 1`,
		`softatm_iso_round_trip_seconds_bucket{mti="0100"`,
		`softatm_iso_link_up 1`,
		`softatm_outbox_pending `,
		`softatm_outbox_oldest_age_seconds `,
		`softatm_ledger_commit_duration_seconds_bucket{outcome="ok",unit="hold"`,
		`softatm_ledger_commit_duration_seconds_bucket{outcome="ok",unit="payout"`,
		`softatm_ledger_retries_total `,
		`softatm_ledger_batches_total{committer="ledger"} `,
		`softatm_ledger_batch_units_total{committer="idempotency"} `,
		`softatm_ledger_committer_busy_seconds_total{committer="ledger"} `,
		`softatm_redis_command_duration_seconds_bucket{command="evalsha"`,
		`softatm_withdrawals{state="completed"} 1`,
		`softatm_withdrawals{state="reserved"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
