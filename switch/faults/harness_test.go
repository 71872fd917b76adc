package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/fixtures/faultproxy"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/iso/banksim"
	"github.com/softatm/softatm/switch/auth"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// binary is the softatm program built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "softatm-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "softatm")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/softatm/softatm/cmd/softatm").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building softatm: %v\n%s", err, out)
		os.Exit(1)
	}
	code := localsrv.RunTests(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// Settings of the harness.
const (
	httpTimeout   = 20 * time.Second // one API call; longer means a hang, which is a failure
	readyTimeout  = 20 * time.Second // a serve process answering /readyz
	settleTimeout = 45 * time.Second // everything redeemable cancelled, sweeper and outbox finished
	crashWait     = 10 * time.Second // a process reaching its crash point
	testSecret    = "faults-test-secret"
	claimTTL      = "3s"
)

// soakScale multiplies the rounds of every scenario (SOFTATM_SOAK_SCALE).
func soakScale() int {
	if n, err := strconv.Atoi(os.Getenv("SOFTATM_SOAK_SCALE")); err == nil && n > 0 {
		return n
	}
	return 1
}

// rng is a seeded source safe for use from many goroutines.
type rng struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (g *rng) IntN(n int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.IntN(n)
}

func (g *rng) Duration(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.IntN(int(hi-lo)+1))
}

// newSeed returns the scenario's random source and logs its seed.
func newSeed(t *testing.T) *rng {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SOFTATM_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SOFTATM_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (replay: SOFTATM_SEED=%d go test -run '^%s$' ./switch/faults/)", seed, seed, t.Name())
	return &rng{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Accounts at the simulated bank. Balances are large and daily limits off,
// so that the scenarios test the switch, not the citizen's budget.
var mbAccounts = []string{"9704000000000011", "9704000000000029", "9704000000000037"}

// opts choose the servers a scenario runs on.
type opts struct {
	privateRedis bool // a Redis of the scenario's own, to flush, kill or cut
	redisProxy   bool // serve processes reach Redis through a fault proxy
	dbProxy      bool // serve processes reach PostgreSQL through a fault proxy
}

// env is one scenario's world: a fresh database with the demo fixtures,
// Redis, the simulator behind a proxy, and serve processes.
type env struct {
	t        *testing.T
	rnd      *rng
	demo     fixtures.Demo
	dbURL    string // direct
	pool     *pgxpool.Pool
	redisURL string // direct
	prefix   string
	redisSrv *localsrv.Server
	sim      *banksim.Sim
	simAddr  string
	bank     *faultproxy.Proxy
	redisPx  *faultproxy.Proxy
	dbPx     *faultproxy.Proxy
	logDir   string

	mu    sync.Mutex
	procs []*proc

	rounds, faults, violations atomic.Int64
	paid                       atomic.Int64 // payouts confirmed by load
	tellerSeq                  int
	allowExceptions            bool
}

func newEnv(t *testing.T, o opts) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, rnd: newSeed(t)}
	var err error
	if e.demo, err = fixtures.LoadDemo(); err != nil {
		t.Fatal(err)
	}
	e.dbURL = localsrv.MustDatabase(t)
	e.loadDatabase(ctx)
	if o.privateRedis {
		e.redisSrv = localsrv.MustPrivateRedis(t)
		e.redisURL, e.prefix = e.redisSrv.URL, "softatm:"
	} else {
		e.redisURL, e.prefix = localsrv.MustRedis(t)
	}

	e.startBank()
	if o.redisProxy {
		if e.redisPx, err = faultproxy.New(strings.TrimPrefix(hostPort(e.redisURL), "")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.redisPx.Close() })
	}
	if o.dbProxy {
		if e.dbPx, err = faultproxy.New(hostPort(e.dbURL)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.dbPx.Close() })
	}
	if e.logDir, err = os.MkdirTemp("", "softatm-faults-log-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.stopAll()
		if t.Failed() {
			e.dumpLogs()
		}
		os.RemoveAll(e.logDir)
		e.recordSoak()
	})
	return e
}

// hostPort returns the host:port of a postgres:// or redis:// URL.
func hostPort(u string) string {
	rest := u[strings.Index(u, "://")+3:]
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// viaProxy replaces a URL's host:port by the proxy's.
func viaProxy(u string, p *faultproxy.Proxy) string {
	return strings.Replace(u, hostPort(u), p.Addr(), 1)
}

// admin runs `softatm admin <args>` against the scenario's database.
func (e *env) admin(args ...string) (string, error) {
	cmd := exec.Command(binary, append([]string{"admin"}, args...)...)
	// The switch's secret keys the client-secret hashes admin writes.
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.dbURL, "SOFTATM_SECRET="+testSecret)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// violation records a broken promise.
func (e *env) violation(format string, args ...any) {
	e.t.Helper()
	e.violations.Add(1)
	e.t.Errorf("VIOLATION: "+format, args...)
}

// fault counts one injected fault.
func (e *env) fault(what string) {
	e.faults.Add(1)
	e.t.Logf("fault: %s", what)
}

// recordSoak appends this scenario's counts to SOFTATM_SOAK_STATS.
func (e *env) recordSoak() {
	path := os.Getenv("SOFTATM_SOAK_STATS")
	if path == "" {
		return
	}
	v := e.violations.Load()
	if e.t.Failed() && v == 0 {
		v = 1 // failed for another reason: still a finding
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	name := e.t.Name()
	if i := strings.Index(name, "/"); i >= 0 {
		name = name[:i]
	}
	fmt.Fprintf(f, "%s %d %d %d\n", name, e.rounds.Load(), e.faults.Load(), v)
}

// proc is one `softatm serve` process.
type proc struct {
	e        *env
	name     string
	terminal string
	url      string
	args     []string
	logPath  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// serveOpts are per-process settings.
type serveOpts struct {
	env  []string // extra environment, e.g. SOFTATM_CRASH_AT=...
	args []string // extra flags, after the defaults (a flag given twice: the last wins)
}

// serve starts a `softatm serve` process and waits until it is ready.
func (e *env) serve(terminal string, so serveOpts) *proc {
	e.t.Helper()
	port, err := localsrv.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	dbURL, redisURL := e.dbURL, e.redisURL
	if e.dbPx != nil {
		dbURL = viaProxy(dbURL, e.dbPx)
	}
	if e.redisPx != nil {
		redisURL = viaProxy(redisURL, e.redisPx)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	p := &proc{e: e, name: terminal, terminal: terminal, url: "http://" + listen,
		logPath: filepath.Join(e.logDir, terminal+".log")}
	// -admin-listen on a port of its own: several instances share this
	// host, and the default admin port would let only the first start.
	p.args = append([]string{"serve", "-listen", listen, "-admin-listen", "127.0.0.1:0", "-database", dbURL, "-redis", redisURL,
		"-redis-prefix", e.prefix, "-bank", e.bank.Addr(), "-secret", testSecret, "-terminal", terminal,
		"-claim-ttl", claimTTL, "-sweep-every", "300ms", "-requested-max", "3s", "-outbox-lease", "3s",
		"-outbox-backoff-max", "1s", "-outbox-max-attempts", "1000", "-auth-timeout", "2s",
		"-account-daily-max", "0", "-db-conns", "16", "-clock-skew", "1s"}, so.args...)
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	p.start(so.env)
	return p
}

// start runs the process with extra environment and waits for /readyz.
func (p *proc) start(extraEnv []string) {
	t := p.e.t
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %s env=%v\n", time.Now().Format(time.RFC3339Nano), extraEnv)
	cmd := exec.Command(binary, p.args...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOFTATM_") && !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "REDIS_URL=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A test binary that dies must not leave switches running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	p.waitReady()
}

// waitReady polls /readyz until the database and the bank link are up
// (Redis may be down on purpose).
func (p *proc) waitReady() {
	t := p.e.t
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited while starting; see its log", p.name)
		default:
		}
		resp, err := c.Get(p.url + "/readyz")
		if err == nil {
			var st map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st["database"] == "up" && st["bank_link"] == "up" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s (last: %v)", p.name, readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// waitExit waits for the process to die by itself (a crash point).
func (p *proc) waitExit(d time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *proc) alive() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (e *env) stopAll() {
	e.mu.Lock()
	ps := append([]*proc(nil), e.procs...)
	e.mu.Unlock()
	for _, p := range ps {
		p.kill()
	}
}

func (e *env) dumpLogs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		e.t.Logf("--- last lines of %s:\n%s", p.name, strings.Join(lines, "\n"))
	}
}

// --- HTTP clients ---

// reply is one API answer; err is a transport error (connection reset,
// timeout, the process died).
type reply struct {
	status int
	body   []byte
	err    error
}

func (r reply) code() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r reply) String() string {
	if r.err != nil {
		return "transport error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

var plainClient = &http.Client{Timeout: httpTimeout}

func do(c *http.Client, method, url string, hdr map[string]string, body any) reply {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: raw, err: err}
}

// bankHeaders are bank code's app credentials and an idempotency key.
func (e *env) bankHeaders(bank, key string) map[string]string {
	for _, b := range e.demo.Banks {
		if b.Code == bank {
			req, _ := http.NewRequest("GET", "/", nil)
			req.SetBasicAuth(b.ClientID, b.ClientSecret)
			return map[string]string{"Authorization": req.Header.Get("Authorization"), "Idempotency-Key": key}
		}
	}
	e.t.Fatalf("no bank %s", bank)
	return nil
}

// created is the part of a withdrawal view the scenarios use.
type created struct {
	ID     uuid.UUID `json:"id"`
	State  string    `json:"state"`
	QR     string    `json:"qr_payload"`
	Amount int64     `json:"amount"`
}

// amount picks a withdrawal amount: 50,000 to 200,000 dong in 10,000s.
func (e *env) amount() int64 { return int64(50_000 + 10_000*e.rnd.IntN(16)) }

// createBody is a withdrawal request for an MB account.
func (e *env) createBody(amount int64) map[string]any {
	return map[string]any{"account": mbAccounts[e.rnd.IntN(len(mbAccounts))], "amount": amount, "currency": "VND",
		"holder_name": "Nguyen Van An", "phone_last4": "5611"}
}

// create asks p for a code as MB's app; key "" picks a fresh one.
func (e *env) create(p *proc, key string, body map[string]any) (created, reply) {
	if key == "" {
		key = uuid.NewString()
	}
	r := do(plainClient, "POST", p.url+"/v1/withdrawals", e.bankHeaders("MB", key), body)
	var c created
	if r.err == nil && r.status == http.StatusCreated {
		_ = json.Unmarshal(r.body, &c)
	}
	return c, r
}

// mustCreate issues a code or fails the test.
func (e *env) mustCreate(p *proc) created {
	e.t.Helper()
	c, r := e.create(p, "", e.createBody(e.amount()))
	if r.err != nil || r.status != http.StatusCreated {
		e.t.Fatalf("create: %v", r)
	}
	return c
}

func (e *env) cancel(p *proc, bank string, id uuid.UUID) reply {
	return do(plainClient, "POST", p.url+"/v1/withdrawals/"+id.String()+"/cancel", e.bankHeaders(bank, uuid.NewString()), nil)
}

// teller is a logged-in kiosk session.
type teller struct {
	name string
	c    *http.Client
	csrf string
}

// addTellers creates n tellers with kiosks of their own, spread over the
// post offices given (default: the two with cash, LS-001 and LS-002).
func (e *env) addTellers(n int, pos ...string) []string {
	e.t.Helper()
	ctx := context.Background()
	a := auth.New(e.pool, auth.WithBcryptCost(bcrypt.MinCost))
	names := make([]string, n)
	e.mu.Lock()
	first := e.tellerSeq
	e.tellerSeq += n
	e.mu.Unlock()
	for i := first; i < first+n; i++ {
		if len(pos) == 0 {
			pos = []string{"LS-001", "LS-002"}
		}
		po := pos[i%len(pos)]
		kiosk := fmt.Sprintf("KFT%05d", i)
		if _, err := e.pool.Exec(ctx, `INSERT INTO kiosks (id, post_office) VALUES ($1, $2) ON CONFLICT DO NOTHING`, kiosk, po); err != nil {
			e.t.Fatal(err)
		}
		name := fmt.Sprintf("fteller%03d", i)
		names[i-first] = name
		if _, err := a.CreateUser(ctx, name, "password-"+name, auth.RoleTeller, po, kiosk); err != nil {
			e.t.Fatalf("creating %s: %v", name, err)
		}
	}
	return names
}

// login logs a teller in on p. The session lives in the database, so it
// works on every instance sharing it.
func (e *env) login(p *proc, username, password string) *teller {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	tl := &teller{name: username, c: &http.Client{Jar: jar, Timeout: httpTimeout}}
	r := do(tl.c, "POST", p.url+"/v1/staff/login", nil, map[string]string{"username": username, "password": password})
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	_ = json.Unmarshal(r.body, &out)
	if r.err != nil || r.status != http.StatusOK || out.CSRF == "" {
		e.t.Fatalf("login %s: %v", username, r)
	}
	tl.csrf = out.CSRF
	return tl
}

// loginAll creates n tellers and logs them in on p.
func (e *env) loginAll(p *proc, n int, pos ...string) []*teller {
	e.t.Helper()
	names := e.addTellers(n, pos...)
	ts := make([]*teller, n)
	for i, nm := range names {
		ts[i] = e.login(p, nm, "password-"+nm)
	}
	return ts
}

func (tl *teller) headers(key string) map[string]string {
	if key == "" {
		key = uuid.NewString()
	}
	return map[string]string{"X-CSRF-Token": tl.csrf, "Idempotency-Key": key}
}

func (tl *teller) scan(p *proc, qr string) reply {
	return do(tl.c, "POST", p.url+"/v1/teller/scan", tl.headers(""), map[string]string{"qr": qr})
}

func (tl *teller) confirm(p *proc, id uuid.UUID, key string) reply {
	return do(tl.c, "POST", p.url+"/v1/teller/confirm", tl.headers(key), map[string]any{"withdrawal_id": id, "id_checked": true})
}

// pay scans and confirms; it returns the confirm's reply (or the scan's,
// when the scan was refused).
func (tl *teller) pay(p *proc, c created) (scanned bool, r reply) {
	r = tl.scan(p, c.QR)
	if r.err != nil || r.status != http.StatusOK {
		return false, r
	}
	return true, tl.confirm(p, c.ID, "")
}

// --- settling and checking ---

// settle brings every withdrawal to a final state through p: what is
// still redeemable is cancelled by its bank, lapsed claims and unanswered
// requests are left to p's sweeper, and p's outbox drains.
func (e *env) settle(p *proc) {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(settleTimeout)
	for {
		rows, err := e.pool.Query(ctx, `SELECT id, bank_code, state FROM withdrawals
			WHERE state IN ('requested','reserved','claimed','paid')`)
		if err != nil {
			e.t.Fatal(err)
		}
		type open struct {
			id         uuid.UUID
			bank, stat string
		}
		var live []open
		for rows.Next() {
			var o open
			if err := rows.Scan(&o.id, &o.bank, &o.stat); err != nil {
				e.t.Fatal(err)
			}
			live = append(live, o)
		}
		rows.Close()
		var pending int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE state = 'pending'`).Scan(&pending); err != nil {
			e.t.Fatal(err)
		}
		if len(live) == 0 && pending == 0 {
			return
		}
		for _, o := range live {
			if o.stat == "reserved" {
				e.cancel(p, o.bank, o.id)
			}
		}
		if time.Now().After(deadline) {
			e.violation("not settled after %s: %d withdrawals open (e.g. %v), %d outbox messages pending", settleTimeout, len(live), live[:min(len(live), 3)], pending)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verify runs `softatm admin check` and compares the database with the
// simulator's books. Call it after settle.
func (e *env) verify() {
	e.t.Helper()
	ctx := context.Background()
	out, err := e.admin("check")
	if err != nil {
		e.violation("softatm admin check: %v\n%s", err, out)
	} else {
		e.t.Logf("softatm admin check:\n%s", strings.TrimSpace(out))
	}

	type wrow struct {
		id                      uuid.UUID
		rrn, state, approval    string
		amount, posts, reversal int64
	}
	rows, err := e.pool.Query(ctx, `SELECT w.id, w.rrn, w.state, w.approval_code, w.amount,
		(SELECT count(*) FROM transfers t WHERE t.withdrawal_id = w.id AND t.kind = 'post_pending'),
		(SELECT count(*) FROM outbox o WHERE o.withdrawal_id = w.id AND o.kind = 'reversal' AND o.state = 'done')
		FROM withdrawals w`)
	if err != nil {
		e.t.Fatal(err)
	}
	byRRN := map[string]*wrow{}
	states := map[string]int{}
	var paid int
	for rows.Next() {
		w := &wrow{}
		if err := rows.Scan(&w.id, &w.rrn, &w.state, &w.approval, &w.amount, &w.posts, &w.reversal); err != nil {
			e.t.Fatal(err)
		}
		byRRN[w.rrn] = w
		states[w.state]++
		switch w.state {
		case "requested", "reserved", "claimed", "paid":
			e.violation("withdrawal %s left %s", w.id, w.state)
		case "completed":
			paid++
			if w.approval == "" {
				e.violation("withdrawal %s paid without an approval code", w.id)
			}
		case "failed", "cancelled", "expired":
			if w.reversal == 0 {
				e.violation("withdrawal %s %s without an answered reversal", w.id, w.state)
			}
		}
		if w.posts > 1 {
			e.violation("withdrawal %s posted %d times", w.id, w.posts)
		}
		if (w.state == "completed") != (w.posts == 1) {
			e.violation("withdrawal %s is %s with %d post_pending transfers", w.id, w.state, w.posts)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}

	holds := e.sim.Holds()
	perRRN := map[string]int{}
	captured := 0
	for _, h := range holds {
		perRRN[h.RRN]++
		if perRRN[h.RRN] == 2 {
			e.violation("two holds at the bank for RRN %s", h.RRN)
		}
		w := byRRN[h.RRN]
		switch {
		case h.State == banksim.HoldHeld:
			e.violation("hold %s (RRN %s, withdrawal %v) still held at the bank", h.ApprovalCode, h.RRN, w)
		case w == nil:
			e.violation("hold %s (RRN %s) %s at the bank for no withdrawal", h.ApprovalCode, h.RRN, h.State)
		case h.State == banksim.HoldCaptured:
			captured++
			if w.state != "completed" || w.amount != h.Amount {
				e.violation("hold %s captured for withdrawal %s which is %s (%d vs %d)", h.ApprovalCode, w.id, w.state, w.amount, h.Amount)
			}
		case h.State == banksim.HoldReleased && w.state == "completed":
			e.violation("withdrawal %s paid but its hold %s was released", w.id, h.ApprovalCode)
		}
	}
	for rrn, w := range byRRN {
		if w.state == "completed" && perRRN[rrn] == 0 {
			e.violation("withdrawal %s paid with no hold at the bank", w.id)
		}
	}
	if captured != paid {
		e.violation("%d holds captured at the bank, %d withdrawals paid", captured, paid)
	}
	// Mismatched bank replies are exceptions by birth (reply_mismatch); the
	// scenarios that make them count them themselves.
	var exceptions int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE state = 'exception' AND kind <> 'reply_mismatch'`).Scan(&exceptions); err != nil {
		e.t.Fatal(err)
	}
	if exceptions > 0 && !e.allowExceptions {
		e.violation("%d outbox messages became exceptions", exceptions)
	}
	e.t.Logf("verified: withdrawals by state %v; %d holds at the bank, %d captured; %d exceptions; faults injected %d",
		states, len(holds), captured, exceptions, e.faults.Load())
}

// paidBy returns the withdrawal's state and who paid it.
func (e *env) row(id uuid.UUID) (state string, posts int) {
	e.t.Helper()
	err := e.pool.QueryRow(context.Background(), `SELECT state,
		(SELECT count(*) FROM transfers t WHERE t.withdrawal_id = w.id AND t.kind = 'post_pending')
		FROM withdrawals w WHERE id = $1`, id).Scan(&state, &posts)
	if err != nil {
		e.t.Fatal(err)
	}
	return state, posts
}

// load runs workers that create codes on the procs and pay about two in
// three of them (some by two tellers racing), until stop is closed. It
// returns how many payouts were confirmed.
func (e *env) load(procs func() []*proc, tellers []*teller, workers int, stop <-chan struct{}) (wait func() int64) {
	var paid atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ps := procs()
				if len(ps) == 0 {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				p := ps[e.rnd.IntN(len(ps))]
				c, r := e.create(p, "", e.createBody(e.amount()))
				if r.err != nil || r.status != http.StatusCreated {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				switch e.rnd.IntN(6) {
				case 0: // the citizen walks away; settle cancels it
				case 1: // two counters race for it
					var inner sync.WaitGroup
					for k := range 2 {
						inner.Add(1)
						go func() {
							defer inner.Done()
							tl := tellers[(w*2+k)%len(tellers)]
							q := ps[e.rnd.IntN(len(ps))]
							if _, r := tl.pay(q, c); r.err == nil && r.status == http.StatusOK {
								paid.Add(1)
								e.paid.Add(1)
							}
						}()
					}
					inner.Wait()
				default:
					tl := tellers[w%len(tellers)]
					if _, r := tl.pay(p, c); r.err == nil && r.status == http.StatusOK {
						paid.Add(1)
						e.paid.Add(1)
					}
				}
			}
		}()
	}
	return func() int64 { wg.Wait(); return paid.Load() }
}

// readLines returns the non-empty lines of s.
func readLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// startBank starts the simulator playing every demo account's bank, with
// balances no scenario exhausts, behind the fault proxy e.bank.
func (e *env) startBank() {
	e.t.Helper()
	accts := make([]banksim.Account, 0, len(e.demo.Accounts))
	for _, a := range e.demo.Accounts {
		accts = append(accts, banksim.Account{Number: a.Number, Bank: a.Bank, Holder: a.Holder, Phone: a.Phone,
			Balance: 1_000_000_000_000, Blocked: a.Blocked})
	}
	e.sim = banksim.New(accts, banksim.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	addr, err := e.sim.Listen("127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.simAddr = addr.String()
	e.t.Cleanup(func() { e.sim.Close() })
	if e.bank, err = faultproxy.New(e.simAddr); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.bank.Close() })
}

// loadDatabase migrates e.dbURL, loads the demo fixtures with cash enough
// for any soak in the tills (a till running dry is a refusal the
// scenarios do not study; the ledger's till flag is tested elsewhere), and
// opens e.pool on it.
func (e *env) loadDatabase(ctx context.Context) {
	e.t.Helper()
	if _, err := switchschema.Migrate(ctx, e.dbURL); err != nil {
		e.t.Fatal(err)
	}
	if out, err := e.admin("load-demo"); err != nil {
		e.t.Fatalf("load-demo: %v\n%s", err, out)
	}
	for _, po := range []string{"LS-001", "LS-002"} {
		if out, err := e.admin("replenish", "-post-office", po, "-amount", "100000000000", "-ref", "faults"); err != nil {
			e.t.Fatalf("replenish %s: %v\n%s", po, err, out)
		}
	}
	var err error
	if e.pool, err = pgxpool.New(ctx, e.dbURL); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(e.pool.Close)
}
