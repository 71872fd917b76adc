package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/recon"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/auth"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/idem"
	"github.com/softatm/softatm/switch/replay"
	"github.com/softatm/softatm/teller"
)

// ServeConfig is everything `softatm serve` needs. Flags default to the
// environment variables named in their help.
type ServeConfig struct {
	Listen      string
	DatabaseURL string
	RedisURL    string
	RedisPrefix string
	BankAddr    string
	Secret      string
	TerminalID  string
	Demo        bool
	Switch      atmswitch.Config
	Outbox      atmswitch.OutboxConfig
	SweepEvery  time.Duration
	// PurgeEvery is how often finished idempotency keys older than KeysKeep,
	// expired sessions and old login failures are deleted.
	PurgeEvery time.Duration
	KeysKeep   time.Duration
	PoolMax    int32
	// LedgerBatch is how many ledger units one transaction may commit
	// (1: a transaction per unit); LedgerBatchWait is how long the committer
	// waits for more units once one is waiting. See ledger.WithBatch.
	LedgerBatch     int
	LedgerBatchWait time.Duration
}

// Ledger batching defaults, chosen with bench/cmd/loadgen (see
// bench/RESULTS.md): payouts on one hot till and one bank's receivable
// serialise on those rows, and committing the waiting units together turns
// many conflicting transactions into one.
const (
	defaultLedgerBatch = 64
	// No waiting for company: while a batch commits, the next one fills by
	// itself; at low load a wait would only add latency (bench/RESULTS.md).
	defaultLedgerBatchWait = 0
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (c *ServeConfig) flags(fs *flag.FlagSet) {
	c.Switch = atmswitch.DefaultConfig()
	c.Outbox = atmswitch.DefaultOutboxConfig()
	fs.StringVar(&c.Listen, "listen", envOr("SOFTATM_LISTEN", "127.0.0.1:8080"), "HTTP address (SOFTATM_LISTEN)")
	fs.StringVar(&c.DatabaseURL, "database", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	fs.StringVar(&c.RedisURL, "redis", os.Getenv("REDIS_URL"), "Redis URL (REDIS_URL)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", envOr("SOFTATM_REDIS_PREFIX", "softatm:"), "prefix of every Redis key")
	fs.StringVar(&c.BankAddr, "bank", envOr("SOFTATM_BANK_ADDR", "127.0.0.1:8583"), "ISO 8583 address of the partner bank (SOFTATM_BANK_ADDR)")
	fs.StringVar(&c.Secret, "secret", os.Getenv("SOFTATM_SECRET"), "secret keying numeric-code hashes; same on every instance (SOFTATM_SECRET)")
	fs.StringVar(&c.Switch.TerminalID, "terminal", envOr("SOFTATM_TERMINAL_ID", c.Switch.TerminalID), "ISO field 41 of this instance's 0100s, 8 characters (SOFTATM_TERMINAL_ID)")
	fs.BoolVar(&c.Demo, "demo", os.Getenv("SOFTATM_DEMO") == "1", "serve /demo/app, the stand-in banking app (SOFTATM_DEMO=1)")
	fs.DurationVar(&c.Switch.CodeTTL, "code-ttl", c.Switch.CodeTTL, "how long a code can be redeemed")
	fs.DurationVar(&c.Switch.ClaimTTL, "claim-ttl", c.Switch.ClaimTTL, "how long a teller's claim lasts")
	fs.DurationVar(&c.Switch.AuthTimeout, "auth-timeout", c.Switch.AuthTimeout, "deadline for the bank's 0110")
	fs.DurationVar(&c.SweepEvery, "sweep-every", 5*time.Second, "how often expired codes and lapsed claims are swept")
	fs.DurationVar(&c.PurgeEvery, "purge-every", time.Hour, "how often finished idempotency keys, expired sessions and old login failures are deleted")
	fs.DurationVar(&c.KeysKeep, "idempotency-keep", 7*24*time.Hour, "how long a finished idempotency key is kept: a client retrying with it later runs the request again")
	fs.IntVar(&c.Outbox.MaxAttempts, "outbox-max-attempts", c.Outbox.MaxAttempts, "tries before an advice becomes an exception")
	fs.DurationVar(&c.Outbox.BackoffMax, "outbox-backoff-max", c.Outbox.BackoffMax, "longest wait between tries")
	fs.Int64Var(&c.Switch.AccountDailyMax, "account-daily-max", c.Switch.AccountDailyMax, "most one account may withdraw in 24 hours, in dong (0: no limit of our own; the bank's still applies)")
	fs.DurationVar(&c.Switch.ClockSkew, "clock-skew", c.Switch.ClockSkew, "clock difference allowed between instances and kiosks: codes and claims are honoured this long past their end")
	fs.DurationVar(&c.Switch.RequestedMax, "requested-max", c.Switch.RequestedMax, "a request without a usable 0110 after this long is failed and reversed by the sweeper")
	fs.DurationVar(&c.Outbox.Lease, "outbox-lease", c.Outbox.Lease, "how long a leased outbox message is this instance's; past it another instance sends it")
	fs.IntVar(&c.LedgerBatch, "ledger-batch", defaultLedgerBatch, "ledger units committed per transaction (1: no batching)")
	fs.DurationVar(&c.LedgerBatchWait, "ledger-batch-wait", defaultLedgerBatchWait, "how long the ledger committer waits to fill a batch")
	var poolMax int
	fs.IntVar(&poolMax, "db-conns", 32, "PostgreSQL connections")
	c.PoolMax = int32(poolMax)
}

// clockOffsetEnv names a hidden setting for the fault tests
// (switch/faults): a signed duration (for example "-5m") added to this
// instance's clock, so that two instances sharing one database can be run
// with the skew a real deployment's unsynchronised hosts would have. It is
// read once at start; unset, the clock is time.Now.
const clockOffsetEnv = "SOFTATM_CLOCK_OFFSET"

func clockFromEnv() (func() time.Time, error) {
	v := os.Getenv(clockOffsetEnv)
	if v == "" {
		return time.Now, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clockOffsetEnv, err)
	}
	return func() time.Time { return time.Now().Add(d) }, nil
}

// Main is one running switch: `softatm serve`, or an end-to-end test.
type Main struct {
	Config ServeConfig
	Log    *slog.Logger

	Addr   net.Addr // the HTTP address, once Run has started
	Pool   *pgxpool.Pool
	Redis  *redis.Client
	Bank   *iso.Client
	Ledger *ledger.Ledger
	// Keys commits the idempotency store's writes: a second committer,
	// because those writes share no table with the ledger's and so can run
	// beside it without conflicting.
	Keys    *ledger.Ledger
	Service *atmswitch.Service
	Outbox  *atmswitch.Outbox
	Auth    *auth.Service

	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Run opens every connection and starts serving; it returns once the
// listener is up. Close stops everything.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if m.Log == nil {
		m.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL (or -database) is required")
	}
	if c.Secret == "" {
		return errors.New("SOFTATM_SECRET (or -secret) is required: it keys the numeric-code hashes")
	}
	if len(c.Switch.TerminalID) != 8 {
		return fmt.Errorf("terminal id %q must be 8 characters", c.Switch.TerminalID)
	}
	if c.SweepEvery <= 0 || c.PurgeEvery <= 0 || c.KeysKeep <= 0 {
		return errors.New("-sweep-every, -purge-every and -idempotency-keep must be positive")
	}
	c.Switch.Secret = []byte(c.Secret)
	clock, err := clockFromEnv()
	if err != nil {
		return err
	}

	pcfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil {
		return fmt.Errorf("parsing DATABASE_URL: %w", err)
	}
	pcfg.MaxConns = c.PoolMax
	if m.Pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	if err := m.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := atmswitch.NewMetrics(reg)

	var gate atmswitch.Gate
	if c.RedisURL != "" {
		opt, err := redis.ParseURL(c.RedisURL)
		if err != nil {
			return fmt.Errorf("parsing REDIS_URL: %w", err)
		}
		// Short timeouts: Redis is the fast gate, and when it is slow we would
		// rather fall back to the database than make the teller wait.
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 500*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		opt.MaxRetries = 1
		// One dial per attempt: go-redis otherwise dials 5 times 100 ms
		// apart, so with Redis refusing connections every gate call took
		// ~1 s and a payout ~4 s before falling back (switch/faults
		// scenario 5).
		opt.DialerRetries = 1
		// No CLIENT SETINFO on connect: Redis before 7.2 refuses it, and the
		// refused pipeline would count as a Redis error in the metrics.
		opt.DisableIdentity = true
		m.Redis = redis.NewClient(opt)
		gate = replay.New(m.Redis, c.RedisPrefix)
	}

	m.Bank = iso.NewClient(c.BankAddr, iso.WithLogger(m.Log), iso.WithRequestTimeout(c.Switch.AuthTimeout),
		iso.WithObserver(metrics.ObserveISO),
		iso.WithLateReply(func(mti, stan, rrn string) {
			m.Log.Warn("late or unmatched reply from the bank; ignored", "mti", mti, "stan", stan, "rrn", rrn)
		}))
	m.Ledger = ledger.New(m.Pool, ledger.WithBatch(max(c.LedgerBatch, 1), c.LedgerBatchWait), ledger.WithClock(clock))
	m.Keys = ledger.New(m.Pool, ledger.WithBatch(max(c.LedgerBatch, 1), c.LedgerBatchWait), ledger.WithClock(clock))
	instrument(reg, metrics, m.Pool, m.Ledger, m.Keys, m.Bank.Up, m.Redis)
	keyring := code.NewKeyring(code.NewPGKeyStore(m.Pool), code.WithSkew(c.Switch.ClockSkew), code.WithMaxLifetime(c.Switch.CodeTTL),
		code.WithClock(clock))
	if err := keyring.Load(ctx); err != nil {
		return fmt.Errorf("loading signing keys (run `softatm keys generate`): %w", err)
	}
	m.Outbox = atmswitch.NewOutbox(c.Outbox, m.Pool, m.Ledger, m.Bank, m.Log, metrics, clock)
	m.Service = atmswitch.NewService(c.Switch, atmswitch.Deps{
		Pool: m.Pool, Ledger: m.Ledger, Bank: m.Bank, Codes: keyring, Gate: gate, Log: m.Log, Metrics: metrics,
		Kick: m.Outbox.Kick, Clock: clock,
	})
	m.Auth = auth.New(m.Pool, auth.WithClientSecretKey([]byte(c.Secret)), auth.WithRegisterer(reg), auth.WithLogger(m.Log))
	idems := idem.New(m.Keys, idem.WithSealKey([]byte(c.Secret)))

	mux := http.NewServeMux()
	route := func(pattern string, h http.Handler) { mux.Handle(pattern, metrics.Instrument(pattern, h)) }
	bankAPI := &atmswitch.BankAPI{Service: m.Service, Log: m.Log, BankOf: func(r *http.Request) (string, bool) {
		b, ok := auth.BankClientFrom(r.Context())
		return b.BankCode, ok
	}}
	bankAuth := m.Auth.RequireBankClient
	bankIdem := func(h http.HandlerFunc) http.Handler { return bankAuth(idems.Middleware(auth.BankClientScope)(h)) }
	route("POST /v1/withdrawals", bankIdem(bankAPI.Create))
	route("GET /v1/withdrawals/{id}", bankAuth(http.HandlerFunc(bankAPI.Get)))
	route("POST /v1/withdrawals/{id}/cancel", bankIdem(bankAPI.Cancel))
	route("GET /v1/withdrawals/{id}/qr.png", bankAuth(http.HandlerFunc(bankAPI.QRPNG)))

	tapi := &teller.API{Service: m.Service, Auth: m.Auth, Pool: m.Pool, Log: m.Log}
	asTeller := m.Auth.RequireStaff(auth.RoleTeller)
	tellerIdem := func(h http.HandlerFunc) http.Handler { return asTeller(idems.Middleware(auth.StaffScope)(h)) }
	route("POST /v1/teller/login", http.HandlerFunc(tapi.Login))
	route("POST /v1/staff/login", http.HandlerFunc(tapi.Login))
	route("POST /v1/staff/logout", http.HandlerFunc(tapi.Logout))
	route("GET /v1/staff/me", m.Auth.RequireStaff(auth.RoleTeller, auth.RoleFinance, auth.RoleAdmin)(http.HandlerFunc(tapi.Me)))
	route("POST /v1/teller/scan", tellerIdem(tapi.AsTeller(tapi.Scan)))
	route("POST /v1/teller/confirm", tellerIdem(tapi.AsTeller(tapi.Confirm)))
	route("POST /v1/teller/release", tellerIdem(tapi.AsTeller(tapi.Release)))
	route("GET /v1/teller/till", asTeller(tapi.AsTeller(tapi.Till)))
	route("GET /v1/teller/receipts/{id}", asTeller(tapi.AsTeller(tapi.Receipt)))

	fin := &teller.Finance{API: tapi, Ledger: m.Ledger, Recon: recon.New(m.Pool, atmswitch.NewReconLines(m.Pool))}
	asFinance := m.Auth.RequireStaff(auth.RoleFinance, auth.RoleAdmin)
	finIdem := func(h http.HandlerFunc) http.Handler { return asFinance(idems.Middleware(auth.StaffScope)(h)) }
	route("GET /v1/finance/days", asFinance(http.HandlerFunc(fin.Days)))
	route("GET /v1/finance/days/{date}/settlement", asFinance(http.HandlerFunc(fin.Settlement)))
	route("POST /v1/finance/days/{date}/close", finIdem(fin.Close))
	route("POST /v1/finance/recon/{bank}/{date}", finIdem(fin.Import))
	route("GET /v1/finance/recon/{bank}/{date}", asFinance(http.HandlerFunc(fin.Report)))
	route("POST /v1/finance/recon/items/{id}/resolve", finIdem(fin.ResolveItem))
	route("GET /v1/finance/exceptions", asFinance(http.HandlerFunc(fin.Exceptions)))
	route("POST /v1/finance/exceptions/{id}/resolve", finIdem(fin.ResolveException))

	teller.MountPages(mux, c.Demo)
	if c.Demo {
		demo := &teller.Demo{Service: m.Service, Pool: m.Pool, Log: m.Log}
		demo.Mount(mux)
	}

	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		atmswitch.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", m.ready)

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	m.Addr = ln.Addr()
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}

	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		done := make(chan struct{}, 3)
		go func() { m.Outbox.Run(bg); done <- struct{}{} }()
		go func() { m.Service.RunSweeper(bg, c.SweepEvery); done <- struct{}{} }()
		go func() { m.purge(bg, idems, c.PurgeEvery, c.KeysKeep, clock); done <- struct{}{} }()
		for range 3 {
			<-done
		}
	}()
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server", "err", err)
		}
	}()
	return nil
}

// purge deletes, every every, the finished idempotency keys older than
// keep and the auth tables' dead rows, so that those tables stay small.
func (m *Main) purge(ctx context.Context, keys *idem.Store, every, keep time.Duration, now func() time.Time) {
	purges := []struct {
		what string
		run  func(context.Context) (int64, error)
	}{
		{"idempotency keys", func(ctx context.Context) (int64, error) { return keys.Purge(ctx, now().Add(-keep)) }},
		{"sessions and login failures", m.Auth.Purge},
	}
	atmswitch.Every(ctx, every, func(ctx context.Context) {
		for _, p := range purges {
			if n, err := p.run(ctx); err != nil {
				m.Log.Warn("purging "+p.what, "err", err)
			} else if n > 0 {
				m.Log.Info("purged "+p.what, "deleted", n)
			}
		}
	})
}

// readyz reports each dependency; 503 if any is down.
func (m *Main) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{"database": "up", "redis": "up", "bank_link": "up"}
	code := http.StatusOK
	if err := m.Pool.Ping(ctx); err != nil {
		status["database"], code = "down", http.StatusServiceUnavailable
	}
	if m.Redis == nil {
		status["redis"] = "not configured"
	} else if err := m.Redis.Ping(ctx).Err(); err != nil {
		// The switch still pays QR codes without Redis, from the database.
		status["redis"], code = "down", http.StatusServiceUnavailable
	}
	if !m.Bank.Up() {
		status["bank_link"], code = "down", http.StatusServiceUnavailable
	}
	atmswitch.WriteJSON(w, code, status)
}

// Close stops serving, lets in-flight requests finish, and closes every
// connection.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if m.srv != nil {
		errs = append(errs, m.srv.Shutdown(ctx))
	}
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	if m.Bank != nil {
		errs = append(errs, m.Bank.Close())
	}
	for _, l := range []*ledger.Ledger{m.Ledger, m.Keys} {
		if l != nil {
			l.Close()
		}
	}
	if m.Redis != nil {
		errs = append(errs, m.Redis.Close())
	}
	if m.Pool != nil {
		m.Pool.Close()
	}
	return errors.Join(errs...)
}

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var m Main
	m.Config.flags(fs)
	// -pprof is hidden (left out of the usage text): a debugging aid for
	// profiling under load (bench/cmd/loadgen -pprof), never for production.
	pprofAddr := fs.String("pprof", "", "")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of serve:\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name != "pprof" {
				fmt.Fprintf(fs.Output(), "  -%s\n    \t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	m.Log.Info("softatm serving", "http", "http://"+m.Addr.String(), "bank", m.Config.BankAddr)
	<-ctx.Done()
	return m.Close()
}

// servePprof serves net/http/pprof on its own listener, apart from the
// switch's mux, so the profiling handlers are never reachable on -listen.
func servePprof(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
