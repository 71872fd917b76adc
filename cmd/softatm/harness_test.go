package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/iso/banksim"
	"github.com/softatm/softatm/ledger/schema/schematest"
	atmswitch "github.com/softatm/softatm/switch"
	switchschema "github.com/softatm/softatm/switch/schema"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

// system is the whole switch on real servers, started in-process the way
// `softatm serve` starts it: a fresh migrated database with the demo
// fixtures, the shared test Redis under a prefix of its own, a bank
// simulator on loopback, and the HTTP server on a free port.
type system struct {
	URL      string
	AdminURL string // metrics and pprof, never on URL
	Main     *Main
	Pool     *pgxpool.Pool
	Sim      *banksim.Sim
	Demo     fixtures.Demo
}

// testKEK is the key-encryption key of the test systems' signing keys.
const testKEK = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func startSystem(t *testing.T, tweak ...func(*ServeConfig)) *system {
	t.Helper()
	return startSystemLogging(t, io.Discard, tweak...)
}

// startSystemLogging is startSystem with the switch's and the simulator's
// logs written to logs.
func startSystemLogging(t *testing.T, logs io.Writer, tweak ...func(*ServeConfig)) *system {
	t.Helper()
	return startSystemWith(t, systemOpts{logs: logs, tweak: tweak})
}

// systemOpts are what a test may change in the system startSystemWith
// starts.
type systemOpts struct {
	logs    io.Writer                                 // the switch's and the simulator's logs (nil: discarded)
	clock   func() time.Time                          // the switch's and the simulator's clock (nil: time.Now)
	simOpts []banksim.Option                          // more options of the simulator
	setup   func(ctx context.Context, a *admin) error // more admin setup after the demo fixtures
	tweak   []func(*ServeConfig)
}

// startSystemWith is startSystem as o says.
func startSystemWith(t *testing.T, o systemOpts) *system {
	t.Helper()
	ctx := context.Background()
	dbURL := schematest.MustMigratedDB(t, switchschema.All()...)
	redisURL, prefix := localsrv.MustRedis(t)
	d, err := fixtures.LoadDemo()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	a := newAdmin(pool, testSwitchSecret)
	err = a.loadDemo(ctx, d)
	if err == nil && o.setup != nil {
		err = o.setup(ctx, a)
	}
	a.close()
	if err != nil {
		t.Fatalf("loading demo fixtures: %v", err)
	}
	if o.logs == nil {
		o.logs = io.Discard
	}
	quiet := slog.New(softatm.ContextHandler(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	simOpts := []banksim.Option{banksim.WithLogger(quiet)}
	if o.clock != nil {
		simOpts = append(simOpts, banksim.WithClock(o.clock))
	}
	sim := banksim.New(demoAccounts(d), append(simOpts, o.simOpts...)...)
	addr, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	m := &Main{Log: quiet, Clock: o.clock}
	m.Config.Switch = atmswitch.DefaultConfig()
	m.Config.Outbox = atmswitch.DefaultOutboxConfig()
	m.Config.Timeouts = DefaultTimeouts()
	m.Config.Listen = "127.0.0.1:0"
	m.Config.AdminListen = "127.0.0.1:0"
	// Every system seals its signing keys, as production does: the demo
	// fixtures' key is written in clear and sealed when Run starts.
	m.Config.KEK = testKEK
	m.Config.DatabaseURL = dbURL
	m.Config.RedisURL = redisURL
	m.Config.RedisPrefix = prefix
	m.Config.BankAddr = addr.String()
	m.Config.Secret = testSwitchSecret
	m.Config.Demo = true
	m.Config.SweepEvery = time.Second
	m.Config.PurgeEvery, m.Config.KeysKeep = time.Hour, 7*24*time.Hour
	m.Config.PoolMax = 16
	m.Config.Outbox.Poll = 50 * time.Millisecond
	for _, f := range o.tweak {
		f(&m.Config)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s := &system{URL: "http://" + m.Addr.String(), AdminURL: "http://" + m.AdminAddr.String(), Main: m, Pool: pool, Sim: sim, Demo: d}
	eventually(t, "the bank link comes up", m.BankUp)
	return s
}

// call sends a JSON request and decodes the JSON answer into out (if not
// nil); it returns the status and the raw body.
func (s *system) call(t *testing.T, c *http.Client, method, path string, hdr map[string]string, body, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, raw
}

// bankHeaders are the demo MB app's credentials and a fresh idempotency key.
func (s *system) bankHeaders(key string) map[string]string {
	b := s.Demo.Banks[0]
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(b.ClientID, b.ClientSecret)
	if key == "" {
		key = uuid.NewString()
	}
	return map[string]string{"Authorization": req.Header.Get("Authorization"), "Idempotency-Key": key}
}

// createWithdrawal issues a code through the bank API, as MB's app would.
func (s *system) createWithdrawal(t *testing.T, account string, amount int64) atmswitch.WithdrawalView {
	t.Helper()
	var v atmswitch.WithdrawalView
	status, raw := s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{
		"account": account, "amount": amount, "currency": "VND", "holder_name": "Nguyen Van An", "phone_last4": "5611",
	}, &v)
	if status != http.StatusCreated {
		t.Fatalf("create withdrawal: %d %s", status, raw)
	}
	return v
}

// state is the withdrawal's state in the database.
func (s *system) state(t *testing.T, id uuid.UUID) string {
	t.Helper()
	var st string
	if err := s.Pool.QueryRow(context.Background(), `SELECT state FROM withdrawals WHERE id = $1`, id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// testSwitchSecret is the -secret of every test switch; `admin` keys the
// client-secret hashes with it too.
const testSwitchSecret = "test-secret"

// eventuallyMax bounds how long eventually waits for the system to settle.
const eventuallyMax = 15 * time.Second

// eventually polls cond until it holds, or fails the test saying what.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventuallyMax)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitState polls until the withdrawal reaches want.
func (s *system) waitState(t *testing.T, id uuid.UUID, want string) {
	t.Helper()
	eventually(t, "withdrawal "+id.String()+" becomes "+want, func() bool { return s.state(t, id) == want })
}
