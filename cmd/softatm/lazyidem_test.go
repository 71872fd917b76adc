package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	atmswitch "github.com/softatm/softatm/switch"
)

// The idempotency records of create, scan and confirm are committed lazily
// (switch/idem, "Durability"): a crash of the database may lose the newest.
// What a loss looks like is the row gone (its 'running' insert lost) or
// left 'running' without its answer (the finish lost); either way the retry
// with the same key must be answered as the first time, from the business
// row, and nothing may happen twice. Each step's record is lost right after
// its answer and the request retried.
func TestLostIdempotencyRecordsAnswerAsTheFirstTime(t *testing.T) {
	t.Parallel()
	for _, loss := range []struct {
		name string
		sql  string // what the crash left of the record of (scope, key)
	}{
		{"record gone", `DELETE FROM idempotency_keys WHERE key = $1`},
		{"answer gone", `UPDATE idempotency_keys SET state = 'running', status = 0, content_type = '', body = NULL,
			lease_until = now() - interval '1 second' WHERE key = $1`},
	} {
		t.Run(loss.name, func(t *testing.T) {
			t.Parallel()
			s := startSystem(t)
			ctx := context.Background()
			lose := func(key string) {
				t.Helper()
				// The record is stored after the answer went out
				// (idem.WithLazyCommit): the crash comes after that.
				eventually(t, "the record of "+key+" stored", func() bool {
					var state string
					_ = s.Pool.QueryRow(ctx, `SELECT state FROM idempotency_keys WHERE key = $1`, key).Scan(&state)
					return state == "done"
				})
				tag, err := s.Pool.Exec(ctx, loss.sql, key)
				if err != nil || tag.RowsAffected() != 1 {
					t.Fatalf("losing the record of %s: %v (%d rows)", key, err, tag.RowsAffected())
				}
			}
			const account, amount = "9704000000000011", 500_000
			before, _ := s.Sim.Account(account)

			// Create: the same withdrawal, one hold at the bank.
			createKey := uuid.NewString()
			body := map[string]any{"account": account, "amount": amount, "currency": "VND", "holder_name": "Nguyen Van An", "phone_last4": "5611"}
			var first, again atmswitch.WithdrawalView
			if st, raw := s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(createKey), body, &first); st != http.StatusCreated {
				t.Fatalf("create: %d %s", st, raw)
			}
			lose(createKey)
			if st, raw := s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(createKey), body, &again); st != http.StatusCreated ||
				again.ID != first.ID || again.State != "reserved" || again.QRPayload != first.QRPayload {
				t.Fatalf("create retried after its record was lost: %d %s, want withdrawal %s reserved with the same code", st, raw, first.ID)
			}
			if a, _ := s.Sim.Account(account); a.Held != amount {
				t.Fatalf("held at the bank after the retried create: %d, want %d (one hold)", a.Held, amount)
			}

			// Scan: the same teller claims the same withdrawal again.
			teller := s.login(t, "teller1", "teller1-demo")
			scanKey := uuid.NewString()
			scan := map[string]string{"qr": first.QRPayload}
			st, scanned := s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(scanKey), scan, nil)
			if st != http.StatusOK {
				t.Fatalf("scan: %d %s", st, scanned)
			}
			lose(scanKey)
			if st, raw := s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(scanKey), scan, nil); st != http.StatusOK ||
				!sameJSONBut(t, scanned, raw, "claim_until") {
				t.Fatalf("scan retried after its record was lost: %d %s, first %s", st, raw, scanned)
			}

			// Confirm: the same receipt; one payout.
			confirmKey := uuid.NewString()
			confirm := map[string]any{"withdrawal_id": first.ID, "id_checked": true}
			st, receipt := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(confirmKey), confirm, nil)
			if st != http.StatusOK {
				t.Fatalf("confirm: %d %s", st, receipt)
			}
			lose(confirmKey)
			if st, raw := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(confirmKey), confirm, nil); st != http.StatusOK || !bytes.Equal(raw, receipt) {
				t.Fatalf("confirm retried after its record was lost: %d %s, want the first receipt %s", st, raw, receipt)
			}
			// Another confirm of the paid code is still refused.
			var e apiError
			if st, _ := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""), confirm, &e); st != http.StatusConflict || e.Error.Code != "code_already_used" {
				t.Fatalf("a new confirm of the paid code: %d %+v, want 409 code_already_used", st, e)
			}

			s.waitState(t, first.ID, "completed")
			var payouts int
			if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM transfers WHERE withdrawal_id = $1 AND kind = 'post_pending'`, first.ID).Scan(&payouts); err != nil || payouts != 1 {
				t.Fatalf("payout transfers: %d (%v), want 1", payouts, err)
			}
			if a, _ := s.Sim.Account(account); a.Held != 0 || a.Balance != before.Balance-amount {
				t.Fatalf("bank account: %+v, want balance %d and nothing held (captured once)", a, before.Balance-amount)
			}
			if err := check(ctx, s.Pool); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// sameJSONBut reports whether two JSON objects' top-level fields agree,
// leaving out the named ones (a re-claim renews its lease).
func sameJSONBut(t *testing.T, a, b []byte, skip ...string) bool {
	t.Helper()
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, k := range skip {
		delete(x, k)
		delete(y, k)
	}
	return reflect.DeepEqual(x, y)
}

// Only the hot routes' records are lazy: a finance request's is durable.
func TestOnlyTheHotRoutesRecordsAreLazy(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	lazy := func() float64 {
		t.Helper()
		return scrapeMetric(t, s.AdminURL, `softatm_ledger_lazy_units_total{committer="idempotency"}`)
	}
	// A hot route's record is stored after its answer went out: wait for
	// it (and for its batch, which counts its units as it ends).
	lazyAfter := func(step string, want float64) {
		t.Helper()
		eventually(t, fmt.Sprintf("%v lazy idempotency units after %s", want, step), func() bool { return lazy() >= want })
		if n := lazy(); n != want {
			t.Fatalf("lazy idempotency units after %s: %v, want %v", step, n, want)
		}
	}
	wd := s.createWithdrawal(t, "9704000000000011", 200_000)
	lazyAfter("a create (its begin and finish)", 2)
	teller := s.login(t, "teller1", "teller1-demo")
	if st, raw := s.call(t, teller.c, "POST", "/v1/teller/release", teller.headers(""), map[string]any{"withdrawal_id": wd.ID}, nil); st == 0 {
		t.Fatalf("release: %d %s", st, raw)
	}
	if n := lazy(); n != 2 {
		t.Fatalf("lazy idempotency units after a release: %v, want still 2 (its record is durable)", n)
	}
	s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"qr": wd.QRPayload}, nil)
	lazyAfter("a scan", 4)

	// The callers' commits and the workers' are counted apart: the
	// outbox's advice, answered, is no caller's.
	background := func() float64 {
		t.Helper()
		return scrapeMetric(t, s.AdminURL, `softatm_ledger_background_units_total{committer="ledger"}`)
	}
	before := background()
	if st, raw := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""), map[string]any{"withdrawal_id": wd.ID, "id_checked": true}, nil); st != http.StatusOK {
		t.Fatalf("confirm: %d %s", st, raw)
	}
	s.waitState(t, wd.ID, "completed")
	eventually(t, "the outbox's answered advice counted as background", func() bool { return background() > before })
}

// scrapeMetric reads one sample of the switch's /metrics (0 if absent).
func scrapeMetric(t *testing.T, adminURL, sample string) float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}
