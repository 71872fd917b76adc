package atmswitch_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	atmswitch "github.com/softatm/softatm/switch"
)

const callbackSecret = "mb-callback-secret-0001"

// receiver is a bank app's callback endpoint. It refuses (500) the first
// failFirst deliveries, or, with hang, never answers; it records every
// delivery it accepted and every signature that did not verify.
type receiver struct {
	*httptest.Server
	secret    []byte
	failFirst int
	hang      bool

	mu       sync.Mutex
	requests int
	accepted []atmswitch.CallbackEvent
	badSigs  []string
}

func newReceiver(t *testing.T, secret string, failFirst int, hang bool) *receiver {
	t.Helper()
	r := &receiver{secret: []byte(secret), failFirst: failFirst, hang: hang}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// hangMax bounds how long the hanging receiver holds a request whose
// sender has not given up.
const hangMax = 5 * time.Second

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests++
	n := r.requests
	r.mu.Unlock()
	if r.hang {
		select {
		case <-req.Context().Done():
		case <-time.After(hangMax):
		}
		return
	}
	if n <= r.failFirst {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ts, sig := req.Header.Get(atmswitch.HeaderCallbackTimestamp), req.Header.Get(atmswitch.HeaderCallbackSignature)
	if !atmswitch.VerifyCallback(r.secret, ts, body, sig) {
		r.badSigs = append(r.badSigs, sig)
	}
	var ev atmswitch.CallbackEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID.String() != req.Header.Get(atmswitch.HeaderCallbackEventID) {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	r.accepted = append(r.accepted, ev)
	w.WriteHeader(http.StatusNoContent)
}

// addClient records a bank client (the auth package's table) directly.
func addClient(t *testing.T, pool *pgxpool.Pool, id, bank string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `INSERT INTO bank_clients (id, bank_code, secret_hash) VALUES ($1, $2, 'unused')`,
		id, bank); err != nil {
		t.Fatal(err)
	}
}

func (e *env) callbackWorker(t *testing.T, maxAttempts int, timeout time.Duration) *atmswitch.Callbacks {
	t.Helper()
	cfg := atmswitch.DefaultCallbackConfig()
	cfg.BackoffMin, cfg.BackoffMax, cfg.MaxAttempts, cfg.Timeout = 5*time.Millisecond, 20*time.Millisecond, maxAttempts, timeout
	return atmswitch.NewCallbacks(cfg, e.pool, e.ledger, e.cfg.Secret, quietLog(), e.m, nil)
}

// drainCallbacks delivers until no callback is pending.
func (e *env) drainCallbacks(t *testing.T, c *atmswitch.Callbacks) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n, err := c.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if e.countCallbacks(t, "pending") == 0 {
			return
		}
		if n == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Fatal("callbacks did not drain")
}

func (e *env) countCallbacks(t *testing.T, delivery string) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM callbacks WHERE delivery = $1`, delivery).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) issueFor(t *testing.T, client string, amount int64) atmswitch.Issued {
	t.Helper()
	is, err := e.svc.Create(context.Background(), "MB", atmswitch.CreateRequest{Account: acctRich, Amount: amount,
		Currency: "VND", HolderName: "Nguyen Van An", PhoneLast4: phoneRich, Client: client})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return is
}

// TestCallbacksExactlyOnceInOrder: a receiver that refuses the first 3
// deliveries gets, after retries, each event exactly once, in order per
// withdrawal, each with a valid signature; a client without a callback URL
// is called for nothing.
func TestCallbacksExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	rcv := newReceiver(t, callbackSecret, 3, false)
	addClient(t, e.pool, "mb-app", "MB")
	addClient(t, e.pool, "mb-quiet", "MB")
	if err := atmswitch.SetCallback(ctx, e.pool, e.cfg.Secret, "mb-app", rcv.URL+"/softatm", callbackSecret); err != nil {
		t.Fatal(err)
	}

	// Paid and completed.
	paid := e.issueFor(t, "mb-app", 500_000)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: paid.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, w.ID); err != nil {
		t.Fatal(err)
	}
	// Cancelled, and its hold released at the bank.
	cancelled := e.issueFor(t, "mb-app", 200_000)
	if _, err := e.svc.Cancel(ctx, "MB", cancelled.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	// Another client's, which has no callback URL.
	quiet := e.issueFor(t, "mb-quiet", 100_000)
	e.drain(t) // 0220 → completed, 0420 → reversed

	cb := e.callbackWorker(t, 10, 2*time.Second)
	e.drainCallbacks(t, cb)

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.requests != len(rcv.accepted)+3 {
		t.Fatalf("%d requests for %d accepted events; want 3 refused more", rcv.requests, len(rcv.accepted))
	}
	if len(rcv.badSigs) != 0 {
		t.Fatalf("signatures that do not verify: %v", rcv.badSigs)
	}
	seen := map[uuid.UUID]bool{}
	types := map[uuid.UUID][]string{}
	for _, ev := range rcv.accepted {
		if seen[ev.ID] {
			t.Fatalf("event %s delivered twice", ev.ID)
		}
		seen[ev.ID] = true
		wid := ev.Withdrawal.ID
		if ev.Seq != len(types[wid])+1 {
			t.Fatalf("withdrawal %s: event seq %d after %v", wid, ev.Seq, types[wid])
		}
		if ev.Withdrawal.Account != "************0011" || ev.Withdrawal.Bank != "MB" {
			t.Fatalf("event withdrawal %+v", ev.Withdrawal)
		}
		types[wid] = append(types[wid], ev.Type)
	}
	for id, want := range map[uuid.UUID][]string{
		paid.Withdrawal.ID:      {"withdrawal.reserved", "withdrawal.claimed", "withdrawal.paid", "withdrawal.completed"},
		cancelled.Withdrawal.ID: {"withdrawal.reserved", "withdrawal.cancelled", "withdrawal.reversed"},
		quiet.Withdrawal.ID:     nil,
	} {
		if !slices.Equal(types[id], want) {
			t.Errorf("withdrawal %s: events %v, want %v", id, types[id], want)
		}
	}
	if n := e.countCallbacks(t, "done"); n != 7 {
		t.Fatalf("%d callbacks done, want 7", n)
	}
	if n := metricValue(t, e, "softatm_callbacks_sent_total", "outcome", "http_5xx"); n != 3 {
		t.Fatalf("%v refused deliveries counted, want 3", n)
	}
}

// TestCallbacksNeverAnswered: a receiver that never answers ends, after
// the last attempt, in the finance exceptions list and the metric; finance
// can requeue one (delivered once the receiver is back) or resolve it.
func TestCallbacksNeverAnswered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	dead := newReceiver(t, callbackSecret, 0, true)
	addClient(t, e.pool, "mb-app", "MB")
	if err := atmswitch.SetCallback(ctx, e.pool, e.cfg.Secret, "mb-app", dead.URL, callbackSecret); err != nil {
		t.Fatal(err)
	}
	is := e.issueFor(t, "mb-app", 300_000)
	const attempts = 3
	e.drainCallbacks(t, e.callbackWorker(t, attempts, 200*time.Millisecond))

	exs, err := e.svc.Exceptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mine []atmswitch.OutboxException
	for _, x := range exs {
		if x.Kind == "callback" {
			mine = append(mine, x)
		}
	}
	if len(mine) != 1 || mine[0].WithdrawalID != is.Withdrawal.ID || mine[0].Attempts != attempts || mine[0].Resolved ||
		!strings.Contains(mine[0].LastError, "Timeout") {
		t.Fatalf("callback exceptions %+v", mine)
	}
	if n := metricValue(t, e, "softatm_callbacks_exceptions_total", "", ""); n != 1 {
		t.Fatalf("exceptions metric %v, want 1", n)
	}
	// A delivery that timed out before the receiver's handler ran is an
	// attempt the receiver never saw: under load, fewer than attempts.
	dead.mu.Lock()
	if dead.requests < 1 || dead.requests > attempts {
		t.Fatalf("the receiver saw %d requests, want 1 to %d", dead.requests, attempts)
	}
	dead.mu.Unlock()

	// The receiver comes back (a new URL) and finance requeues the event:
	// it is delivered, once.
	back := newReceiver(t, callbackSecret, 0, false)
	if err := atmswitch.SetCallback(ctx, e.pool, e.cfg.Secret, "mb-app", back.URL, callbackSecret); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Requeue(ctx, mine[0].ID); err != nil {
		t.Fatal(err)
	}
	e.drainCallbacks(t, e.callbackWorker(t, attempts, time.Second))
	back.mu.Lock()
	if len(back.accepted) != 1 || back.accepted[0].ID != mine[0].ID || back.accepted[0].Type != "withdrawal.reserved" {
		t.Fatalf("after requeue the receiver got %+v", back.accepted)
	}
	back.mu.Unlock()
	if err := e.svc.Requeue(ctx, mine[0].ID); softatm.ErrorCode(err) != softatm.ENotFound {
		t.Fatalf("requeue of a delivered callback: %v", err)
	}

	// Another event given up is resolved with a note instead.
	if _, err := e.svc.Cancel(ctx, "MB", is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	if err := atmswitch.SetCallback(ctx, e.pool, e.cfg.Secret, "mb-app", dead.URL, callbackSecret); err != nil {
		t.Fatal(err)
	}
	e.drainCallbacks(t, e.callbackWorker(t, 1, 50*time.Millisecond))
	var cancelledEv uuid.UUID
	if err := e.pool.QueryRow(ctx, `SELECT id FROM callbacks WHERE withdrawal_id = $1 AND state = 'cancelled'`,
		is.Withdrawal.ID).Scan(&cancelledEv); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResolveException(ctx, cancelledEv, "finance", "the bank was told by phone"); err != nil {
		t.Fatal(err)
	}
	exs, _ = e.svc.Exceptions(ctx)
	for _, x := range exs {
		if x.ID == cancelledEv && (!x.Resolved || !strings.Contains(x.ResolvedNote, "by phone")) {
			t.Fatalf("resolved exception %+v", x)
		}
	}
}

func TestSetCallback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	addClient(t, e.pool, "mb-app", "MB")
	for _, tc := range []struct {
		name, client, url, secret string
		code                      string
	}{
		{"https", "mb-app", "https://bank.example/hooks/softatm", callbackSecret, ""},
		{"removed", "mb-app", "", "", ""},
		{"relative URL", "mb-app", "/hooks", callbackSecret, softatm.EInvalid},
		{"another scheme", "mb-app", "ftp://bank.example/x", callbackSecret, softatm.EInvalid},
		{"credentials in the URL", "mb-app", "https://u:p@bank.example/x", callbackSecret, softatm.EInvalid},
		{"short secret", "mb-app", "https://bank.example/x", "short", softatm.EInvalid},
		{"unknown client", "nobody", "https://bank.example/x", callbackSecret, softatm.ENotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := atmswitch.SetCallback(ctx, e.pool, e.cfg.Secret, tc.client, tc.url, tc.secret)
			if got := softatm.ErrorCode(err); (tc.code == "" && err != nil) || (tc.code != "" && got != tc.code) {
				t.Fatalf("err %v (%s), want %q", err, got, tc.code)
			}
		})
	}
	// The secret is stored sealed, never in clear.
	if err := atmswitch.SetCallback(ctx, e.pool, e.cfg.Secret, "mb-app", "https://bank.example/x", callbackSecret); err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := e.pool.QueryRow(ctx, `SELECT callback_secret FROM bank_clients WHERE id = 'mb-app'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored == "" || strings.Contains(stored, callbackSecret) {
		t.Fatalf("stored callback secret %q", stored)
	}
}

func TestCallbackSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"x"}`)
	sig := atmswitch.SignCallback([]byte(callbackSecret), "1700000000", body)
	for _, tc := range []struct {
		name   string
		secret string
		ts     string
		body   []byte
		sig    string
		ok     bool
	}{
		{"as signed", callbackSecret, "1700000000", body, sig, true},
		{"another secret", "another-secret-of-16", "1700000000", body, sig, false},
		{"another timestamp", callbackSecret, "1700000001", body, sig, false},
		{"another body", callbackSecret, "1700000000", []byte(`{"id":"y"}`), sig, false},
		{"no signature", callbackSecret, "1700000000", body, "", false},
	} {
		if got := atmswitch.VerifyCallback([]byte(tc.secret), tc.ts, tc.body, tc.sig); got != tc.ok {
			t.Errorf("%s: verified %v, want %v", tc.name, got, tc.ok)
		}
	}
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
}
