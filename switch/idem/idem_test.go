package idem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema/schematest"
	"github.com/softatm/softatm/switch/idem"
	switchschema "github.com/softatm/softatm/switch/schema"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), schematest.MustMigratedDB(tb, switchschema.All()...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// mustCommitter is a batching committer on a fresh database, as serve
// runs the store's.
func mustCommitter(tb testing.TB) (*ledger.Ledger, *pgxpool.Pool) {
	tb.Helper()
	pool := mustPool(tb)
	l := ledger.New(pool, ledger.WithBatch(64, time.Millisecond))
	tb.Cleanup(l.Close)
	return l, pool
}

// harness is an httptest server whose handler counts its runs and may be
// held inside the handler until released.
type harness struct {
	srv   *httptest.Server
	store *idem.Store
	pool  *pgxpool.Pool
	clock *clock
	runs  atomic.Int64
	// blockRun is the run number (1-based) that waits for release; 0: none.
	blockRun atomic.Int64
	release  chan struct{}
	entered  chan struct{}
	status   atomic.Int64
}

func newHarness(t *testing.T, opts ...idem.Option) *harness {
	t.Helper()
	h := &harness{clock: &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}, entered: make(chan struct{}, 100), release: make(chan struct{})}
	h.status.Store(http.StatusCreated)
	opts = append([]idem.Option{idem.WithClock(h.clock.Now)}, opts...)
	l, pool := mustCommitter(t)
	h.store, h.pool = idem.New(l, opts...), pool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := h.runs.Add(1)
		h.entered <- struct{}{}
		if n == h.blockRun.Load() {
			<-h.release
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Run", "1")
		w.WriteHeader(int(h.status.Load()))
		_ = json.NewEncoder(w).Encode(map[string]any{"run": n, "echo": string(body)})
	})
	scope := func(r *http.Request) (string, bool) {
		c := r.Header.Get("X-Caller")
		return c, c != ""
	}
	h.srv = httptest.NewServer(h.store.Middleware(scope)(handler))
	t.Cleanup(h.srv.Close)
	return h
}

type reply struct {
	status   int
	ctype    string
	body     string
	replayed string
}

func (h *harness) do(t *testing.T, caller, key, path, body string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if caller != "" {
		req.Header.Set("X-Caller", caller)
	}
	if key != "" {
		req.Header.Set(idem.HeaderKey, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return reply{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Get("Content-Type"), string(b), resp.Header.Get(idem.HeaderReplayed)}
}

func errCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.Error.Message == "" {
		t.Errorf("error body %q has no message", body)
	}
	return e.Error.Code
}

func TestSameKeySameBodyReplays(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	first := h.do(t, "bankA", "k-1", "/v1/withdrawals", `{"amount":500000}`)
	if first.status != http.StatusCreated || first.replayed != "" {
		t.Fatalf("first: %+v", first)
	}
	second := h.do(t, "bankA", "k-1", "/v1/withdrawals", `{"amount":500000}`)
	if second.status != first.status || second.body != first.body || second.ctype != first.ctype {
		t.Fatalf("replay differs:\nfirst  %+v\nsecond %+v", first, second)
	}
	if second.replayed != "true" {
		t.Errorf("replay without %s header", idem.HeaderReplayed)
	}
	if n := h.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, idem.WithMaxBodyBytes(1024))
	if r := h.do(t, "bankA", "used", "/v1/withdrawals", `{"amount":1}`); r.status != http.StatusCreated {
		t.Fatalf("setup: %+v", r)
	}
	tests := []struct {
		name, caller, key, path, body string
		status                        int
		code                          string
	}{
		{"different body", "bankA", "used", "/v1/withdrawals", `{"amount":2}`, http.StatusUnprocessableEntity, softatm.EIdemReused},
		{"different path", "bankA", "used", "/v1/other", `{"amount":1}`, http.StatusUnprocessableEntity, softatm.EIdemReused},
		{"missing key", "bankA", "", "/v1/withdrawals", `{}`, http.StatusBadRequest, softatm.EInvalid},
		{"bad key", "bankA", "has space", "/v1/withdrawals", `{}`, http.StatusBadRequest, softatm.EInvalid},
		{"key too long", "bankA", strings.Repeat("a", 101), "/v1/withdrawals", `{}`, http.StatusBadRequest, softatm.EInvalid},
		{"no caller", "", "k", "/v1/withdrawals", `{}`, http.StatusUnauthorized, softatm.EUnauthorized},
		{"body too large", "bankA", "big", "/v1/withdrawals", strings.Repeat("x", 1025), http.StatusRequestEntityTooLarge, softatm.ETooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, tc.caller, tc.key, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.status, r.body)
			}
			if c := errCode(t, r.body); c != tc.code {
				t.Fatalf("code %q, want %q", c, tc.code)
			}
		})
	}
	if n := h.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	// A body of exactly the limit is accepted.
	if r := h.do(t, "bankA", "edge", "/v1/withdrawals", strings.Repeat("x", 1024)); r.status != http.StatusCreated {
		t.Fatalf("body at the limit: %+v", r)
	}
}

func TestKeyLengthLimitAccepted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if r := h.do(t, "bankA", strings.Repeat("A", 100), "/x", ""); r.status != http.StatusCreated {
		t.Fatalf("100-character key: %+v", r)
	}
}

func TestSafeMethodsPassThrough(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp, err := http.Get(h.srv.URL + "/v1/withdrawals/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
}

func TestInProgressIs409(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blockRun.Store(1)
	done := make(chan reply)
	go func() { done <- h.do(t, "bankA", "slow", "/v1/withdrawals", `{}`) }()
	<-h.entered // the first request is inside the handler, its row committed

	r := h.do(t, "bankA", "slow", "/v1/withdrawals", `{}`)
	if r.status != http.StatusConflict || errCode(t, r.body) != softatm.EInProgress {
		t.Fatalf("second while running: %+v", r)
	}
	close(h.release)
	first := <-done
	if first.status != http.StatusCreated {
		t.Fatalf("first: %+v", first)
	}
	again := h.do(t, "bankA", "slow", "/v1/withdrawals", `{}`)
	if again.body != first.body || again.replayed != "true" {
		t.Fatalf("after finish: %+v, want replay of %+v", again, first)
	}
	if n := h.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestConcurrentIdenticalRequestsRunOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 10
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		replies = make([]reply, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = h.do(t, "bankA", "burst", "/v1/withdrawals", `{"amount":100000}`)
		}()
	}
	close(start)
	wg.Wait()
	if got := h.runs.Load(); got != 1 {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	var created int
	for _, r := range replies {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			if c := errCode(t, r.body); c != softatm.EInProgress {
				t.Errorf("409 with code %q", c)
			}
		default:
			t.Errorf("unexpected reply %+v", r)
		}
	}
	if created < 1 {
		t.Fatal("no request got the answer")
	}
}

func TestLeaseTakeover(t *testing.T) {
	t.Parallel()
	h := newHarness(t, idem.WithLease(10*time.Second))
	h.blockRun.Store(1)
	done := make(chan reply)
	go func() { done <- h.do(t, "bankA", "dead", "/v1/withdrawals", `{}`) }()
	<-h.entered

	// Within the lease the key is busy.
	if r := h.do(t, "bankA", "dead", "/v1/withdrawals", `{}`); r.status != http.StatusConflict {
		t.Fatalf("within lease: %+v", r)
	}
	// After the lease the first request is presumed dead and a retry runs.
	h.clock.Add(11 * time.Second)
	r2 := h.do(t, "bankA", "dead", "/v1/withdrawals", `{}`)
	// The "dead" request wakes up late: it must not overwrite the answer.
	close(h.release)
	r1 := <-done
	if r2.status != http.StatusCreated {
		t.Fatalf("takeover: %+v", r2)
	}
	if h.runs.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2", h.runs.Load())
	}
	// The stored answer is the taker-over's: the dead request lost the row.
	r3 := h.do(t, "bankA", "dead", "/v1/withdrawals", `{}`)
	if r3.replayed != "true" || r3.body != r2.body {
		t.Fatalf("replay %+v, want body of the takeover %q (first got %q)", r3, r2.body, r1.body)
	}
}

func TestScopesAreIndependent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.do(t, "bankA", "same", "/v1/withdrawals", `{"amount":1}`)
	b := h.do(t, "bankB", "same", "/v1/withdrawals", `{"amount":2}`)
	if a.status != http.StatusCreated || b.status != http.StatusCreated || b.replayed != "" {
		t.Fatalf("a %+v b %+v", a, b)
	}
	if h.runs.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2", h.runs.Load())
	}
}

func TestServerErrorsAreNotStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.status.Store(http.StatusServiceUnavailable)
	if r := h.do(t, "bankA", "retry-me", "/v1/withdrawals", `{}`); r.status != http.StatusServiceUnavailable {
		t.Fatalf("first: %+v", r)
	}
	h.status.Store(http.StatusCreated)
	r := h.do(t, "bankA", "retry-me", "/v1/withdrawals", `{}`)
	if r.status != http.StatusCreated || r.replayed != "" {
		t.Fatalf("retry after 5xx: %+v", r)
	}
	if h.runs.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2", h.runs.Load())
	}
}

func TestClientErrorsAreStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.status.Store(http.StatusUnprocessableEntity)
	first := h.do(t, "bankA", "no", "/v1/withdrawals", `{}`)
	h.status.Store(http.StatusCreated)
	second := h.do(t, "bankA", "no", "/v1/withdrawals", `{}`)
	if second.status != http.StatusUnprocessableEntity || second.body != first.body || second.replayed != "true" {
		t.Fatalf("4xx not replayed: first %+v second %+v", first, second)
	}
}

func TestPanicReleasesKey(t *testing.T) {
	t.Parallel()
	l, _ := mustCommitter(t)
	store := idem.New(l)
	var panicked atomic.Bool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !panicked.Swap(true) {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := httptest.NewServer(store.Middleware(func(*http.Request) (string, bool) { return "c", true })(handler))
	t.Cleanup(srv.Close)
	post := func() (int, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/x", strings.NewReader("{}"))
		req.Header.Set(idem.HeaderKey, "p")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if _, err := post(); err == nil {
		t.Fatal("aborted handler: want a broken connection")
	}
	if st, err := post(); err != nil || st != http.StatusCreated {
		t.Fatalf("retry after panic: %d %v", st, err)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.do(t, "bankA", "old", "/x", "")
	h.clock.Add(48 * time.Hour)
	n, err := h.store.Purge(context.Background(), h.clock.Now().Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if r := h.do(t, "bankA", "old", "/x", ""); r.replayed != "" || r.status != http.StatusCreated {
		t.Fatalf("after purge: %+v", r)
	}
}

// TestSealedBodies: with a seal key the stored response is not readable in
// the table (a create's answer holds the numeric code), and a replay still
// answers it whole.
func TestSealedBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, idem.WithSealKey([]byte("test-secret")))
	const secret = "123456789012"
	first := h.do(t, "bankA", "k1", "/v1/withdrawals", `{"numeric":"`+secret+`"}`)
	if first.status != http.StatusCreated || !strings.Contains(first.body, secret) {
		t.Fatalf("first: %+v", first)
	}
	var stored []byte
	if err := h.pool.QueryRow(context.Background(), `SELECT body FROM idempotency_keys WHERE scope = 'bankA' AND key = 'k1'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(secret)) || bytes.Contains(stored, []byte("echo")) {
		t.Fatalf("the stored body is readable: %q", stored)
	}
	second := h.do(t, "bankA", "k1", "/v1/withdrawals", `{"numeric":"`+secret+`"}`)
	if second.status != first.status || second.body != first.body || second.replayed != "true" {
		t.Fatalf("replay: first %+v second %+v", first, second)
	}
}

// TestReplayKeepsSecurityHeaders: a replayed answer is never cached and
// never sniffed, like the first (softatm.WriteJSON's headers); a create's
// answer holds a numeric code.
func TestReplayKeepsSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		softatm.WriteJSON(w, http.StatusCreated, map[string]string{"numeric_code": "123456789012"})
	})
	srv := httptest.NewServer(h.store.Middleware(func(r *http.Request) (string, bool) { return "bankA", true })(handler))
	t.Cleanup(srv.Close)
	send := func() http.Header {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/withdrawals", strings.NewReader(`{}`))
		req.Header.Set(idem.HeaderKey, "k-headers")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	first, replay := send(), send()
	if replay.Get(idem.HeaderReplayed) != "true" {
		t.Fatal("the second answer was not a replay")
	}
	for _, name := range []string{"Cache-Control", "X-Content-Type-Options", "Content-Type"} {
		if first.Get(name) == "" || replay.Get(name) != first.Get(name) {
			t.Errorf("%s: first %q, replay %q", name, first.Get(name), replay.Get(name))
		}
	}
}

// TestReplayedRefusalCountsAsItsCode: a stored refusal replayed for a
// retry is counted under its own error code in the request metrics, as the
// first answer was, not as "ok".
func TestReplayedRefusalCountsAsItsCode(t *testing.T) {
	t.Parallel()
	l, _ := mustCommitter(t)
	store := idem.New(l)
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		softatm.WriteError(w, r, nil, softatm.Errorf(softatm.EInvalidAmount, "too much"))
	})
	scope := func(r *http.Request) (string, bool) { return "bankA", true }
	labels := make(chan string, 2)
	inner := store.Middleware(scope)(refuse)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, o := softatm.WithOutcome(r.Context())
		inner.ServeHTTP(w, r.WithContext(ctx))
		labels <- o.Label()
	}))
	t.Cleanup(srv.Close)
	for i, want := range []string{"", "true"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/withdrawals", strings.NewReader(`{"amount":1}`))
		req.Header.Set(idem.HeaderKey, "refused-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get(idem.HeaderReplayed) != want {
			t.Fatalf("request %d: status %d replayed %q", i, resp.StatusCode, resp.Header.Get(idem.HeaderReplayed))
		}
		if got := <-labels; got != softatm.EInvalidAmount {
			t.Errorf("request %d counted as %q, want %q", i, got, softatm.EInvalidAmount)
		}
	}
}

// TestLazyStoreAnswersBeforeStoring: a lazy store's answer reaches the
// client while storing it is held up (a row lock taken here), and a retry
// once it is stored gets the same answer. A durable store's answer waits
// for the store.
func TestLazyStoreAnswersBeforeStoring(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		opts  []idem.Option
		early bool
	}{
		{"lazy", []idem.Option{idem.WithLazyCommit()}, true},
		{"durable", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			h := newHarness(t, c.opts...)
			h.blockRun.Store(1)
			done := make(chan reply, 1)
			go func() { done <- h.do(t, "bankA", "held", "/v1/withdrawals", `{}`) }()
			<-h.entered // its row is committed, 'running'
			tx, err := h.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `SELECT 1 FROM idempotency_keys WHERE scope = 'bankA' AND key = 'held' FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			close(h.release)
			// Storing the answer now waits for this lock.
			for {
				var waiting int
				if err := h.pool.QueryRow(ctx, `SELECT COUNT(*) FROM pg_stat_activity
					WHERE wait_event_type = 'Lock' AND query LIKE '%UPDATE idempotency_keys%'`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if waiting > 0 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			var first reply
			if c.early {
				select {
				case first = <-done:
				case <-time.After(20 * time.Second):
					t.Fatal("the answer waited for its record to be stored")
				}
				if first.status != http.StatusCreated {
					t.Fatalf("answer before storing: %+v", first)
				}
				// Not stored yet: a retry now would get 409, as while it
				// ran (TestInProgressIs409).
				var state string
				if err := h.pool.QueryRow(ctx, `SELECT state FROM idempotency_keys WHERE scope = 'bankA' AND key = 'held'`).Scan(&state); err != nil || state != "running" {
					t.Fatalf("the record when the answer came: %q, %v; want running", state, err)
				}
			} else {
				select {
				case r := <-done:
					t.Fatalf("a durable store answered before storing: %+v", r)
				default:
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if !c.early {
				first = <-done
			}
			for {
				var state string
				if err := h.pool.QueryRow(ctx, `SELECT state FROM idempotency_keys WHERE scope = 'bankA' AND key = 'held'`).Scan(&state); err != nil {
					t.Fatal(err)
				}
				if state == "done" {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			again := h.do(t, "bankA", "held", "/v1/withdrawals", `{}`)
			if again.body != first.body || again.replayed != "true" {
				t.Fatalf("once stored: %+v, want the replay of %+v", again, first)
			}
			if n := h.runs.Load(); n != 1 {
				t.Fatalf("handler ran %d times, want 1", n)
			}
		})
	}
}
