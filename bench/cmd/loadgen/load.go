package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Per-request settings of the clients.
const (
	requestTimeout  = 30 * time.Second // one API call
	completeTimeout = 60 * time.Second // create until completed
	drainMax        = 15 * time.Second // after the window, for flows in flight to end
)

// The operations timed, in report order.
var ops = []string{"create", "scan", "confirm", "get", "completed", "deposit_create", "deposit_scan", "deposit_confirm", "credited"}

type loadResult struct {
	window     time.Duration
	completed  int // withdrawals completed inside the window
	lat        map[string][]time.Duration
	errors     map[string]int // "op: code" -> count, whole run
	missed     int            // fixed-rate starts dropped because every client was busy
	startedAll int            // withdrawals created over the whole run (warm-up and drain too)
	flowsAll   int            // flows that reached completed over the whole run

	commitsPerWithdrawal   float64
	rollbacksPerWithdrawal float64 // mostly serialization conflicts re-run by the switch
	// updates of the withdrawals table per withdrawal created, and the
	// HOT ones (no index entry written)
	updatesPerWithdrawal, hotUpdatesPerWithdrawal float64

	elapsed time.Duration      // the whole load: warm-up, window and drain
	cpu     []cpuUse           // CPU time per process over elapsed
	metrics map[string]float64 // the switch's /metrics over elapsed (after - before); nil if not scraped

	statements []statement // -statements: PostgreSQL's busiest statements over elapsed
}

type client struct {
	w      *world
	o      opts
	http   *http.Client
	bank   benchBank
	teller benchTeller
	csrf   string
	rng    *rand.Rand

	lat    map[string][]time.Duration
	errs   map[string]int
	done   []time.Time // completion times
	starts int
	flows  int
}

type apiError struct {
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

func newClient(w *world, o opts, i int, tr http.RoundTripper) (*client, error) {
	jar, _ := cookiejar.New(nil)
	c := &client{w: w, o: o, http: &http.Client{Transport: tr, Jar: jar, Timeout: requestTimeout},
		bank: w.Banks[i%len(w.Banks)], teller: w.Tellers[i%len(w.Tellers)],
		rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
		lat: map[string][]time.Duration{}, errs: map[string]int{}}
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	status, code, err := c.call(context.Background(), "POST", "/v1/staff/login", nil,
		map[string]string{"username": c.teller.Username, "password": c.teller.Password}, &out)
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("login %s: %d %s %v", c.teller.Username, status, code, err)
	}
	c.csrf = out.CSRF
	return c, nil
}

// call sends a JSON request; it returns the status and, for an error
// answer, its code.
func (c *client) call(ctx context.Context, method, path string, hdr map[string]string, body, out any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.w.URL+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "transport", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "transport", err
	}
	if resp.StatusCode >= 300 {
		var e apiError
		_ = json.Unmarshal(raw, &e)
		if e.Error.Code == "" {
			e.Error.Code = fmt.Sprintf("http_%d", resp.StatusCode)
		}
		return resp.StatusCode, e.Error.Code, nil
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, "bad_json", err
		}
	}
	return resp.StatusCode, "", nil
}

func (c *client) bankHeaders() map[string]string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(c.bank.ClientID, c.bank.Secret)
	return map[string]string{"Authorization": req.Header.Get("Authorization"), "Idempotency-Key": uuid.NewString()}
}

func (c *client) tellerHeaders() map[string]string {
	return map[string]string{"X-CSRF-Token": c.csrf, "Idempotency-Key": uuid.NewString()}
}

// timed runs one call and records its latency when it ends inside the
// window; a failure is counted by op and code.
func (c *client) timed(op string, win window, fn func() (int, string, error)) bool {
	start := time.Now()
	status, code, err := fn()
	end := time.Now()
	if code != "" || err != nil || status >= 300 {
		if code == "" {
			code = fmt.Sprintf("http_%d", status)
		}
		c.errs[op+": "+code]++
		return false
	}
	if win.contains(end) {
		c.lat[op] = append(c.lat[op], end.Sub(start))
	}
	return true
}

type window struct{ from, to time.Time }

func (w window) contains(t time.Time) bool { return !t.Before(w.from) && t.Before(w.to) }

// flow runs one withdrawal from create to completed.
func (c *client) flow(ctx context.Context, win window) {
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	begin := time.Now()
	var v struct {
		ID    uuid.UUID `json:"id"`
		QR    string    `json:"qr_payload"`
		State string    `json:"state"`
	}
	account := c.bank.Accounts[c.rng.IntN(len(c.bank.Accounts))]
	c.starts++
	if !c.timed("create", win, func() (int, string, error) {
		return c.call(ctx, "POST", "/v1/withdrawals", c.bankHeaders(), map[string]any{
			"account": account, "amount": benchAmount, "currency": "VND", "holder_name": "Bench Citizen", "phone_last4": "5611",
		}, &v)
	}) {
		return
	}
	if !c.timed("scan", win, func() (int, string, error) {
		return c.call(ctx, "POST", "/v1/teller/scan", c.tellerHeaders(), map[string]string{"qr": v.QR}, nil)
	}) {
		return
	}
	if !c.timed("confirm", win, func() (int, string, error) {
		return c.call(ctx, "POST", "/v1/teller/confirm", c.tellerHeaders(),
			map[string]any{"withdrawal_id": v.ID, "id_checked": true}, nil)
	}) {
		return
	}
	for {
		var g struct {
			State string `json:"state"`
		}
		if !c.timed("get", win, func() (int, string, error) {
			return c.call(ctx, "GET", "/v1/withdrawals/"+v.ID.String()+c.waitQuery(), c.bankHeaders(), nil, &g)
		}) {
			return
		}
		if g.State == "completed" {
			end := time.Now()
			c.flows++
			if win.contains(end) {
				c.lat["completed"] = append(c.lat["completed"], end.Sub(begin))
				c.done = append(c.done, end)
			}
			return
		}
		if g.State != "paid" {
			c.errs["completed: state_"+g.State]++
			return
		}
		select {
		case <-ctx.Done():
			c.errs["completed: timeout"]++
			return
		case <-time.After(c.o.poll):
		}
	}
}

// waitQuery asks the switch to answer a status GET only once the
// withdrawal has left paid (-wait), or nothing (plain polling).
func (c *client) waitQuery() string {
	if c.o.wait <= 0 {
		return ""
	}
	return "?changed_from=paid&wait=" + c.o.wait.String()
}

// runLoad logs every client in, then runs flows until the window ends and
// lets the flows in flight finish.
func runLoad(ctx context.Context, w *world, o opts) (loadResult, error) {
	tr := &http.Transport{MaxIdleConns: 4 * o.clients, MaxIdleConnsPerHost: 4 * o.clients, IdleConnTimeout: time.Minute}
	clients := make([]*client, o.clients)
	for i := range clients {
		c, err := newClient(w, o, i, tr)
		if err != nil {
			return loadResult{}, err
		}
		clients[i] = c
	}
	start := time.Now()
	win := window{from: start.Add(o.warmup), to: start.Add(o.warmup + o.duration)}

	// With -rate, a pacer hands out start tokens; a token nobody takes in
	// time is a missed start (every client busy): the rate was too high.
	var tokens chan struct{}
	missed := 0
	var pacerDone chan struct{}
	if o.rate > 0 {
		tokens = make(chan struct{})
		pacerDone = make(chan struct{})
		go func() {
			defer close(pacerDone)
			defer close(tokens)
			interval := time.Duration(float64(time.Second) / o.rate)
			for next := time.Now(); next.Before(win.to); next = next.Add(interval) {
				if d := time.Until(next); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				// Unbuffered: the send succeeds only if a client is waiting.
				select {
				case tokens <- struct{}{}:
				default:
					missed++
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(win.to) {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						return
					}
				}
				if o.depositShare > 0 && c.rng.Float64() < o.depositShare {
					c.depositFlow(ctx, win)
				} else {
					c.flow(ctx, win)
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Until(win.to) + drainMax):
		status("some flows did not finish %s after the window", drainMax)
	case <-ctx.Done():
		return loadResult{}, ctx.Err()
	}
	if pacerDone != nil {
		<-pacerDone
	}

	res := loadResult{window: o.duration, lat: map[string][]time.Duration{}, errors: map[string]int{}, missed: missed}
	for _, c := range clients {
		for op, l := range c.lat {
			res.lat[op] = append(res.lat[op], l...)
		}
		for k, n := range c.errs {
			res.errors[k] += n
		}
		res.completed += len(c.done)
		res.startedAll += c.starts
		res.flowsAll += c.flows
	}
	for _, l := range res.lat {
		slices.Sort(l)
	}
	return res, nil
}

// quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
