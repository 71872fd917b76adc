package main

import (
	"bytes"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// staff is a logged-in browser: a cookie jar and the session's CSRF token.
type staff struct {
	c    *http.Client
	csrf string
}

func (s *system) login(t *testing.T, username, password string) *staff {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	st := &staff{c: &http.Client{Jar: jar}}
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	status, raw := s.call(t, st.c, "POST", "/v1/staff/login", nil, map[string]string{"username": username, "password": password}, &out)
	if status != http.StatusOK || out.CSRF == "" {
		t.Fatalf("login %s: %d %s", username, status, raw)
	}
	st.csrf = out.CSRF
	return st
}

func (st *staff) headers(key string) map[string]string {
	if key == "" {
		key = uuid.NewString()
	}
	return map[string]string{"X-CSRF-Token": st.csrf, "Idempotency-Key": key}
}

type apiError struct {
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

func TestEndToEndHappyPath(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	wd := s.createWithdrawal(t, "9704000000000011", 500_000)
	if wd.State != "reserved" || wd.QRPayload == "" || len(wd.NumericCode) != 12 {
		t.Fatalf("created %+v", wd)
	}

	// The QR image decodes back to the signed payload.
	req, _ := http.NewRequest("GET", s.URL+wd.QRPNG, nil)
	for k, v := range s.bankHeaders("") {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pngBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("qr.png: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	bmp, _ := gozxing.NewBinaryBitmapFromImage(img)
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil || res.GetText() != wd.QRPayload {
		t.Fatalf("QR decodes to %q (%v), want the payload", res, err)
	}

	teller := s.login(t, "teller1", "teller1-demo")
	var scan struct {
		WithdrawalID uuid.UUID `json:"withdrawal_id"`
		Amount       int64     `json:"amount"`
		Holder       string    `json:"holder_name_masked"`
		BankName     string    `json:"bank_name"`
	}
	status, raw := s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"qr": wd.QRPayload}, &scan)
	if status != 200 || scan.Amount != 500_000 || scan.Holder != "N***** V** A*" || scan.BankName == "" {
		t.Fatalf("scan: %d %s", status, raw)
	}
	// Confirm without the ID check is refused and changes nothing.
	status, _ = s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""), map[string]any{"withdrawal_id": wd.ID}, nil)
	if status != http.StatusBadRequest || s.state(t, wd.ID) != "claimed" {
		t.Fatalf("confirm without id check: %d, state %s", status, s.state(t, wd.ID))
	}
	key := uuid.NewString()
	body := map[string]any{"withdrawal_id": wd.ID, "id_checked": true}
	status, first := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(key), body, nil)
	if status != 200 {
		t.Fatalf("confirm: %d %s", status, first)
	}
	// A double tap (same key) gets the same receipt; a new confirm is
	// refused. (Until the first's record is stored, which follows its
	// answer, the second gets 409 request_in_progress and the kiosk asks
	// again, as here.)
	var again []byte
	eventually(t, "the double tap answered", func() bool {
		status, again = s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(key), body, nil)
		return status != http.StatusConflict || !bytes.Contains(again, []byte("request_in_progress"))
	})
	if status != 200 || !bytes.Equal(first, again) {
		t.Fatalf("replayed confirm: %d %s vs %s", status, again, first)
	}
	var e apiError
	status, _ = s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""), body, &e)
	if status != http.StatusConflict || e.Error.Code != "code_already_used" {
		t.Fatalf("second confirm: %d %+v", status, e)
	}
	// The bank's app waits for the completion in one GET instead of polling.
	var done struct {
		State string `json:"state"`
	}
	status, raw = s.call(t, nil, "GET", "/v1/withdrawals/"+wd.ID.String()+"?changed_from=paid&wait=20s", s.bankHeaders(""), nil, &done)
	if status != 200 || done.State != "completed" {
		t.Fatalf("waiting for the completion: %d %s", status, raw)
	}
	if a, _ := s.Sim.Account("9704000000000011"); a.Held != 0 || a.Balance != 20_000_000-500_000 {
		t.Fatalf("bank account after capture: %+v", a)
	}
	var till struct {
		Count   int64 `json:"count"`
		PaidOut int64 `json:"paid_out"`
		Cash    int64 `json:"cash"`
	}
	status, raw = s.call(t, teller.c, "GET", "/v1/teller/till", nil, nil, &till)
	if status != 200 || till.Count != 1 || till.PaidOut != 500_000 || till.Cash != 200_000_000-500_000 {
		t.Fatalf("till: %d %s", status, raw)
	}
	if err := check(t.Context(), s.Pool); err != nil {
		t.Fatal(err)
	}
}

func TestEndToEndCancelAndRefusals(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	wd := s.createWithdrawal(t, "9704000000000029", 200_000)
	var v struct {
		State string `json:"state"`
	}
	status, raw := s.call(t, nil, "POST", "/v1/withdrawals/"+wd.ID.String()+"/cancel", s.bankHeaders(""), nil, &v)
	if status != 200 || v.State != "cancelled" {
		t.Fatalf("cancel: %d %s", status, raw)
	}
	eventually(t, "the bank released the hold", func() bool {
		a, _ := s.Sim.Account("9704000000000029")
		return s.Sim.Received("0420") == 1 && a.Held == 0
	})

	teller := s.login(t, "teller1", "teller1-demo")
	tampered := []byte(wd.QRPayload)
	tampered[5] ^= 1
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   any
		raw    string
		status int
		code   string
	}{
		{"malformed JSON", "POST", "/v1/withdrawals", s.bankHeaders(""), nil, "{not json", 400, "invalid_request"},
		{"unknown field", "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{"acount": "1"}, "", 400, "invalid_request"},
		// A duplicate key is refused, not "last wins" (nor first): the bank
		// app and the switch must read one request the same way.
		{"duplicate key", "POST", "/v1/withdrawals", s.bankHeaders(""), nil, `{"account":"9704000000000011","amount":100000,"amount":200000,"phone_last4":"5611"}`, 400, "invalid_request"},
		{"duplicate key in other case", "POST", "/v1/withdrawals", s.bankHeaders(""), nil, `{"account":"9704000000000011","amount":100000,"AMOUNT":200000,"phone_last4":"5611"}`, 400, "invalid_request"},
		{"name with a leading NUL", "POST", "/v1/withdrawals", s.bankHeaders(""), nil, `{"account":"9704000000000011","amount":100000,"phone_last4":"5611","holder_name":"\u0000Nguyen Van An"}`, 422, "invalid_name"},
		{"name with a control character", "POST", "/v1/withdrawals", s.bankHeaders(""), nil, `{"account":"9704000000000011","amount":100000,"phone_last4":"5611","holder_name":"Nguyen\u0007Van An"}`, 422, "invalid_name"},
		{"name with a bidi override", "POST", "/v1/withdrawals", s.bankHeaders(""), nil, `{"account":"9704000000000011","amount":100000,"phone_last4":"5611","holder_name":"Nguyen \u202eVan An"}`, 422, "invalid_name"},
		{"name with markup", "POST", "/v1/withdrawals", s.bankHeaders(""), nil, `{"account":"9704000000000011","amount":100000,"phone_last4":"5611","holder_name":"<img src=x onerror=alert(1)>"}`, 422, "invalid_name"},
		{"zero amount", "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{"account": "9704000000000011", "amount": 0, "phone_last4": "1234"}, "", 422, "invalid_amount"},
		{"over the limit", "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{"account": "9704000000000011", "amount": 90_000_000, "phone_last4": "1234"}, "", 422, "invalid_amount"},
		{"unknown account", "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{"account": "9704000000009999", "amount": 100_000, "phone_last4": "1234"}, "", 422, "unknown_account"},
		{"no credentials", "POST", "/v1/withdrawals", map[string]string{"Idempotency-Key": "k1"}, map[string]any{}, "", 401, "unauthorized"},
		{"no idempotency key", "POST", "/v1/withdrawals", map[string]string{"Authorization": s.bankHeaders("")["Authorization"]}, map[string]any{}, "", 400, "invalid_request"},
		{"tampered code", "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"qr": string(tampered)}, "", 422, "code_invalid"},
		{"cancelled code", "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"qr": wd.QRPayload}, "", 410, "code_cancelled"},
		{"a wait without a state", "GET", "/v1/withdrawals/" + wd.ID.String() + "?wait=5s", s.bankHeaders(""), nil, "", 400, "invalid_request"},
		{"a state without a wait", "GET", "/v1/withdrawals/" + wd.ID.String() + "?changed_from=cancelled", s.bankHeaders(""), nil, "", 400, "invalid_request"},
		{"a wait too long", "GET", "/v1/withdrawals/" + wd.ID.String() + "?changed_from=cancelled&wait=1h", s.bankHeaders(""), nil, "", 400, "invalid_request"},
		{"a wait for no state", "GET", "/v1/withdrawals/" + wd.ID.String() + "?changed_from=held&wait=1s", s.bankHeaders(""), nil, "", 400, "invalid_request"},
		{"a wait on no withdrawal", "GET", "/v1/withdrawals/" + uuid.NewString() + "?changed_from=paid&wait=1s", s.bankHeaders(""), nil, "", 404, "not_found"},
		{"no CSRF token", "POST", "/v1/teller/scan", map[string]string{"Idempotency-Key": "k2"}, map[string]string{"qr": wd.QRPayload}, "", 403, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := http.DefaultClient
			if strings.HasPrefix(tc.path, "/v1/teller") {
				c = teller.c
			}
			var status int
			var body []byte
			if tc.raw != "" {
				req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.raw))
				for k, v := range tc.hdr {
					req.Header.Set(k, v)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			} else {
				status, body = s.call(t, c, tc.method, tc.path, tc.hdr, tc.body, nil)
			}
			if status != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	var n int
	if err := s.Pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM withdrawals WHERE state NOT IN ('cancelled', 'declined')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("bad input left %d withdrawals (%v)", n, err)
	}
}

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		status, body := s.call(t, nil, "GET", path, nil, nil, nil)
		if status != 200 {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		if path == "/readyz" && !strings.Contains(string(body), `"bank_link":"up"`) {
			t.Fatalf("readyz: %s", body)
		}
	}
	if status, body := get(t, s.AdminURL+"/metrics"); status != 200 || !strings.Contains(body, "softatm_outbox_pending") {
		t.Fatalf("admin /metrics: %d, softatm_outbox_pending missing", status)
	}
	// With the bank gone, /readyz says so.
	s.Sim.Close()
	eventually(t, "readyz reports the bank link down", func() bool {
		status, body := s.call(t, nil, "GET", "/readyz", nil, nil, nil)
		return status == http.StatusServiceUnavailable && strings.Contains(string(body), `"bank_link":"down"`)
	})
}

// TestWaitBoundedByTheWriteTimeout: a status GET may not wait longer than
// half the server's write timeout, past which its answer would be cut off.
func TestWaitBoundedByTheWriteTimeout(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *ServeConfig) { c.Timeouts.HTTPWrite = 4 * time.Second })
	wd := s.createWithdrawal(t, "9704000000000011", 100_000)
	path := "/v1/withdrawals/" + wd.ID.String() + "?changed_from=claimed&wait="
	var e apiError
	if st, raw := s.call(t, nil, "GET", path+"3s", s.bankHeaders(""), nil, &e); st != http.StatusBadRequest || e.Error.Code != "invalid_request" {
		t.Fatalf("a wait past half the write timeout: %d %s, want 400 invalid_request", st, raw)
	}
	var v struct {
		State string `json:"state"`
	}
	if st, raw := s.call(t, nil, "GET", path+"2s", s.bankHeaders(""), nil, &v); st != http.StatusOK || v.State != "reserved" {
		t.Fatalf("a wait within it: %d %s, want 200 reserved", st, raw)
	}
}
