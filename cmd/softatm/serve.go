package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm"
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
	Listen string
	// AdminListen serves /metrics and /debug/pprof/, apart from the public
	// listener (which answers 404 for them); "" serves no admin listener.
	AdminListen string
	// PublicURL is the address clients use, e.g. https://atm.example.vn
	// behind a TLS proxy. With https the session cookie is Secure and every
	// answer carries Strict-Transport-Security.
	PublicURL string
	// TrustedProxies lists the reverse proxies (the TLS terminator), as
	// comma-separated CIDRs or addresses, whose X-Forwarded-For names the
	// client; empty: the TCP peer is the client. Behind a proxy not listed
	// here every login shares the proxy's address and its delays.
	TrustedProxies string
	// KeyFile holds the key-encryption key of the signing keys' private
	// seeds (64 hex digits); KEK is that key itself (SOFTATM_KEK), used when
	// KeyFile is empty. Neither: seeds are kept in clear, with a warning.
	KeyFile     string
	KEK         string
	DatabaseURL string
	RedisURL    string
	// RedisSentinels, when set, are the Sentinels' host:port addresses:
	// Redis is then reached as the primary they name (RedisMaster), and
	// followed across a failover. RedisURL then only gives the database
	// number and password, if any.
	RedisSentinels []string
	RedisMaster    string
	RedisPrefix    string
	// BankAddr is the link of every bank with no link_addr of its own (the
	// single-bank setup); "" gives such banks none.
	BankAddr string
	BankTLS  BankTLS // TLS of every bank link; zero: plain TCP
	// BreakerFailures requests in a row without a reply open a bank
	// link's circuit for BreakerCooldown (iso.WithBreaker; defaults 3 and
	// 5 s): its creates are then refused at once with bank_unavailable.
	// 0 takes the default; a negative BreakerFailures turns the breaker off.
	BreakerFailures int
	BreakerCooldown time.Duration
	// LinksRefresh is how often the banks table is read again (links,
	// ranges, state); 0: atmswitch's default, 5 s.
	LinksRefresh time.Duration
	Secret       string
	TerminalID   string
	Demo         bool
	Switch       atmswitch.Config
	Outbox       atmswitch.OutboxConfig
	Timeouts     Timeouts
	Callbacks    atmswitch.CallbackConfig
	SweepEvery   time.Duration
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
	// KeysDurable commits the idempotency records of create, scan and
	// confirm durably, before answering, too. Off (the default), they are
	// committed without waiting for their WAL flush, the answer stored
	// after it went out (idem.WithLazyCommit; switch/idem, "Durability"):
	// those callers wait for their business unit's durable commit only.
	KeysDurable bool
	// LedgerCommitLock makes the committers of all instances on one
	// database take turns (ledger.WithCommitLock) instead of colliding.
	LedgerCommitLock bool
	// LogFormat is "text" (key=value lines) or "json" (one object per
	// line, for a log collector).
	LogFormat string
}

// Timeouts are serve's own deadlines (the switch's are in
// atmswitch.Config); DefaultTimeouts has each default beside its reason.
type Timeouts struct {
	HTTPReadHeader time.Duration // a client's request headers
	HTTPRead       time.Duration // a whole request, body included
	HTTPWrite      time.Duration // from the end of the headers to the end of the answer
	HTTPIdle       time.Duration // a kept-alive connection with no request
	Shutdown       time.Duration // Close: in-flight requests finish within it
	Ready          time.Duration // /readyz: each dependency's ping
	RedisDial      time.Duration
	RedisRead      time.Duration
	RedisWrite     time.Duration
}

// DefaultTimeouts returns serve's default deadlines.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		HTTPReadHeader: 10 * time.Second, // slow-header clients hold a connection no longer
		HTTPRead:       30 * time.Second, // bodies are small (JSON, a settlement file)
		// Longer than every handler's own deadline (the bank's 0110 is
		// -auth-timeout), so that a slow answer is sent, not cut.
		HTTPWrite: 60 * time.Second,
		HTTPIdle:  2 * time.Minute,
		Shutdown:  10 * time.Second,
		Ready:     2 * time.Second,
		// Short: Redis is the fast gate, and when it is slow we would rather
		// fall back to the database than make the teller wait.
		RedisDial:  500 * time.Millisecond,
		RedisRead:  300 * time.Millisecond,
		RedisWrite: 300 * time.Millisecond,
	}
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
	// defaultAdminListen is loopback: metrics and profiles tell an outsider
	// too much (load, code paths), so reaching them from elsewhere is an
	// operator's explicit choice.
	defaultAdminListen = "127.0.0.1:9090"
	// hstsMaxAge is how long a browser, once told, refuses plain HTTP to
	// this host: a year, the usual value. No includeSubDomains: the switch
	// does not know the other hosts of its domain.
	hstsMaxAge = 365 * 24 * time.Hour
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
	c.Timeouts = DefaultTimeouts()
	c.Callbacks = atmswitch.DefaultCallbackConfig()
	fs.IntVar(&c.Callbacks.MaxAttempts, "callback-max-attempts", c.Callbacks.MaxAttempts, "tries before a callback to a bank app becomes an exception")
	fs.StringVar(&c.Listen, "listen", envOr("SOFTATM_LISTEN", "127.0.0.1:8080"), "HTTP address (SOFTATM_LISTEN)")
	fs.StringVar(&c.AdminListen, "admin-listen", envOr("SOFTATM_ADMIN_LISTEN", defaultAdminListen), "address of /metrics and /debug/pprof/, never on -listen; empty: none (SOFTATM_ADMIN_LISTEN)")
	fs.StringVar(&c.PublicURL, "public-url", os.Getenv("SOFTATM_PUBLIC_URL"), "the URL clients use; https:// (TLS at a proxy) makes the session cookie Secure and sends HSTS (SOFTATM_PUBLIC_URL)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", os.Getenv("SOFTATM_TRUSTED_PROXIES"), "comma-separated CIDRs or addresses of the reverse proxies whose X-Forwarded-For is believed (SOFTATM_TRUSTED_PROXIES)")
	fs.StringVar(&c.KeyFile, "key-file", os.Getenv("SOFTATM_KEY_FILE"), "file holding the key-encryption key that seals the signing keys' private seeds (SOFTATM_KEY_FILE; or the key itself in SOFTATM_KEK)")
	c.KEK = os.Getenv("SOFTATM_KEK")
	fs.StringVar(&c.DatabaseURL, "database", os.Getenv("DATABASE_URL"), "PostgreSQL URL; several hosts with target_session_attrs=read-write follow a failover, e.g. postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write (DATABASE_URL)")
	fs.StringVar(&c.RedisURL, "redis", os.Getenv("REDIS_URL"), "Redis URL (REDIS_URL)")
	fs.Func("redis-sentinels", "comma-separated host:port of Redis Sentinels; Redis is then the primary they name (SOFTATM_REDIS_SENTINELS)", func(v string) error {
		c.RedisSentinels = splitList(v)
		return nil
	})
	c.RedisSentinels = splitList(os.Getenv("SOFTATM_REDIS_SENTINELS"))
	fs.StringVar(&c.RedisMaster, "redis-master", envOr("SOFTATM_REDIS_MASTER", "softatm"), "the name the Sentinels know the Redis primary by (SOFTATM_REDIS_MASTER)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", envOr("SOFTATM_REDIS_PREFIX", "softatm:"), "prefix of every Redis key")
	fs.StringVar(&c.BankAddr, "bank", envOr("SOFTATM_BANK_ADDR", "127.0.0.1:8583"), "ISO 8583 address of the partner bank (SOFTATM_BANK_ADDR)")
	c.BankTLS.flags(fs)
	fs.IntVar(&c.BreakerFailures, "bank-breaker-failures", iso.DefaultBreakerFailures, "requests in a row without a reply that open a bank link's circuit (negative: no breaker)")
	fs.DurationVar(&c.BreakerCooldown, "bank-breaker-cooldown", iso.DefaultBreakerCooldown, "how long an open circuit refuses a bank's requests before one probe")
	fs.DurationVar(&c.LinksRefresh, "banks-refresh", 5*time.Second, "how often the banks table (links, ranges, limits, state) is read again")
	fs.StringVar(&c.Secret, "secret", os.Getenv("SOFTATM_SECRET"), "secret keying numeric-code hashes; same on every instance (SOFTATM_SECRET)")
	fs.StringVar(&c.Switch.TerminalID, "terminal", envOr("SOFTATM_TERMINAL_ID", c.Switch.TerminalID), "ISO field 41 of this instance's 0100s, 8 characters (SOFTATM_TERMINAL_ID)")
	fs.StringVar(&c.Switch.CardAcceptorID, "card-acceptor", envOr("SOFTATM_CARD_ACCEPTOR", c.Switch.CardAcceptorID), "ISO field 42 of every message about a withdrawal, up to 15 characters (SOFTATM_CARD_ACCEPTOR)")
	fs.StringVar(&c.Switch.AcceptorName, "acceptor-name", c.Switch.AcceptorName, "ISO field 43's name (25 characters) on 0100s and 0420s; a 0220's names the post office that paid")
	fs.StringVar(&c.Switch.AcceptorCity, "acceptor-city", c.Switch.AcceptorCity, "ISO field 43's city (13 characters) on 0100s and 0420s")
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
	fs.DurationVar(&c.Switch.CreditTimeout, "credit-timeout", c.Switch.CreditTimeout, "deadline for the bank's 0210 to a deposit (at most -auth-timeout, the link's own deadline)")
	fs.DurationVar(&c.Switch.CreditingMax, "crediting-max", c.Switch.CreditingMax, "a deposit without a usable 0210 after this long is failed and reversed by the sweeper")
	fs.Int64Var(&c.Switch.LargeCashThreshold, "large-cash-threshold", c.Switch.LargeCashThreshold, "an account's deposits of a business day at or above this (minor units) need the depositor's ID number; 0: never")
	fs.DurationVar(&c.Outbox.Lease, "outbox-lease", c.Outbox.Lease, "how long a leased outbox message is this instance's; past it another instance sends it")
	fs.IntVar(&c.LedgerBatch, "ledger-batch", defaultLedgerBatch, "ledger units committed per transaction (1: no batching)")
	fs.BoolVar(&c.KeysDurable, "idempotency-durable", os.Getenv("SOFTATM_IDEMPOTENCY_DURABLE") == "1", "store the idempotency records of create, scan and confirm before answering, and wait for their WAL flush, as every other route's; without it a database crash may lose the newest, and a retry is then answered from the withdrawal's row (SOFTATM_IDEMPOTENCY_DURABLE=1: on)")
	fs.BoolVar(&c.LedgerCommitLock, "ledger-commit-lock", os.Getenv("SOFTATM_LEDGER_COMMIT_LOCK") != "0", "committers of every instance on the database take turns, so that two instances' batches do not collide (SOFTATM_LEDGER_COMMIT_LOCK=0: off)")
	fs.StringVar(&c.LogFormat, "log-format", envOr("SOFTATM_LOG_FORMAT", "text"), "text or json: one JSON object per log line, every line about a withdrawal with its id in \"withdrawal\" (SOFTATM_LOG_FORMAT)")
	fs.DurationVar(&c.LedgerBatchWait, "ledger-batch-wait", defaultLedgerBatchWait, "how long the ledger committer waits to fill a batch")
	t := &c.Timeouts
	for _, d := range []struct {
		p          *time.Duration
		name, help string
	}{
		{&t.HTTPReadHeader, "http-read-header-timeout", "deadline for a request's headers"},
		{&t.HTTPRead, "http-read-timeout", "deadline for a whole request"},
		{&t.HTTPWrite, "http-write-timeout", "deadline for an answer; longer than -auth-timeout"},
		{&t.HTTPIdle, "http-idle-timeout", "how long an idle kept-alive connection stays open"},
		{&t.Shutdown, "shutdown-timeout", "how long in-flight requests get to finish on stop"},
		{&t.Ready, "ready-timeout", "deadline of each dependency's ping in /readyz"},
		{&t.RedisDial, "redis-dial-timeout", "deadline for a Redis connection; past it the database answers"},
		{&t.RedisRead, "redis-read-timeout", "deadline for a Redis reply"},
		{&t.RedisWrite, "redis-write-timeout", "deadline for a Redis write"},
	} {
		fs.DurationVar(d.p, d.name, *d.p, d.help)
	}
	var poolMax int
	fs.IntVar(&poolMax, "db-conns", 32, "PostgreSQL connections")
	c.PoolMax = int32(poolMax)
}

// check refuses a configuration serve cannot run with.
func (c *ServeConfig) check() error {
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL (or -database) is required")
	}
	if c.Secret == "" {
		return errors.New("SOFTATM_SECRET (or -secret) is required: it keys the numeric-code hashes")
	}
	if len(c.Switch.TerminalID) != 8 {
		return fmt.Errorf("terminal id %q must be 8 characters", c.Switch.TerminalID)
	}
	if n := len(c.Switch.CardAcceptorID); n == 0 || n > 15 {
		return fmt.Errorf("card acceptor %q must be 1 to 15 characters", c.Switch.CardAcceptorID)
	}
	if c.SweepEvery <= 0 || c.PurgeEvery <= 0 || c.KeysKeep <= 0 {
		return errors.New("-sweep-every, -purge-every and -idempotency-keep must be positive")
	}
	t := c.Timeouts
	for _, d := range []time.Duration{t.HTTPReadHeader, t.HTTPRead, t.HTTPWrite, t.HTTPIdle, t.Shutdown, t.Ready,
		t.RedisDial, t.RedisRead, t.RedisWrite} {
		if d <= 0 {
			return errors.New("every -*-timeout must be positive")
		}
	}
	if _, err := c.proxies(); err != nil {
		return err
	}
	if c.LogFormat != "" && c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("-log-format %q: want text or json", c.LogFormat)
	}
	_, err := c.https()
	return err
}

// proxies parses -trusted-proxies: a bare address is a one-address prefix.
func (c *ServeConfig) proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(c.TrustedProxies, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("-trusted-proxies: %q is neither a CIDR nor an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// newLogger writes to stderr in format ("json" or text).
// Lines written with a context carry its softatm.WithLogAttrs (the
// withdrawal's id on the bank link's lines).
func newLogger(format string) *slog.Logger {
	if format == "json" {
		return slog.New(softatm.ContextHandler(slog.NewJSONHandler(os.Stderr, nil)))
	}
	return slog.New(softatm.ContextHandler(slog.NewTextHandler(os.Stderr, nil)))
}

// https reports whether clients reach the switch over HTTPS (-public-url).
func (c *ServeConfig) https() (bool, error) {
	if c.PublicURL == "" {
		return false, nil
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false, fmt.Errorf("-public-url %q: want http:// or https:// and a host", c.PublicURL)
	}
	return u.Scheme == "https", nil
}

// kek returns the key-encryption key of the signing keys' seeds, or nil if
// none is configured.
func (c *ServeConfig) kek() (*code.KEK, error) {
	return loadKEK(c.KeyFile, c.KEK)
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
	// Clock, if set, is the clock of everything the switch runs (tests
	// that walk business days); nil: time.Now or SOFTATM_CLOCK_OFFSET's.
	Clock func() time.Time

	clock     func() time.Time // time.Now, or the fault tests' offset clock, or Clock
	Addr      net.Addr         // the HTTP address, once Run has started
	AdminAddr net.Addr         // the admin address (metrics, pprof); nil without one
	Pool      *pgxpool.Pool
	Redis     *redis.Client
	// Links holds one ISO 8583 link per bank (the -bank link for the
	// banks with no address of their own) and each link's outbox worker.
	Links  *atmswitch.Links
	Ledger *ledger.Ledger
	// Keys commits the idempotency store's writes: a second committer,
	// because those writes share no table with the ledger's and so can run
	// beside it without conflicting.
	Keys    *ledger.Ledger
	Service *atmswitch.Service
	Auth    *auth.Service

	// Callbacks delivers state changes to the bank apps that asked.
	Callbacks *atmswitch.Callbacks

	srvs   []*http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Run opens every connection and starts serving; it returns once the
// listeners are up. Close stops everything.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if err := c.check(); err != nil {
		return err
	}
	if m.Log == nil {
		m.Log = newLogger(c.LogFormat)
	}
	c.Switch.Secret = []byte(c.Secret)
	// One setting: the advices and reversals carry the 0100's 42 and 43.
	c.Outbox.CardAcceptorID, c.Outbox.AcceptorName, c.Outbox.AcceptorCity = c.Switch.CardAcceptorID, c.Switch.AcceptorName, c.Switch.AcceptorCity
	clock, err := clockFromEnv()
	if err != nil {
		return err
	}
	if m.Clock != nil {
		clock = m.Clock
	}
	m.clock = clock
	if err := m.openPool(ctx); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := atmswitch.NewMetrics(reg)
	var gate atmswitch.Gate
	if c.RedisURL != "" || len(c.RedisSentinels) > 0 {
		if m.Redis, err = openRedis(c.RedisURL, c.RedisSentinels, c.RedisMaster, c.Timeouts); err != nil {
			return err
		}
		gate = replay.New(m.Redis, c.RedisPrefix)
	}
	bankTLS, err := c.BankTLS.options()
	if err != nil {
		return err
	}
	lock := func(name string) ledger.Option {
		if !c.LedgerCommitLock {
			name = ""
		}
		return ledger.WithCommitLock(name)
	}
	m.Ledger = ledger.New(m.Pool, ledger.WithBatch(max(c.LedgerBatch, 1), c.LedgerBatchWait), ledger.WithClock(clock), lock("ledger"))
	m.Keys = ledger.New(m.Pool, ledger.WithBatch(max(c.LedgerBatch, 1), c.LedgerBatchWait), ledger.WithClock(clock), lock("idempotency"))
	// One link per bank (atmswitch.Links): each bank row with a link_addr
	// gets its own; the banks without share the -bank link. TLS is the
	// same for all of them (-bank-tls-*).
	breakerFailures := cmp.Or(c.BreakerFailures, iso.DefaultBreakerFailures)
	if breakerFailures < 0 {
		breakerFailures = 0 // off
	}
	dial := func(lc atmswitch.LinkConfig, observe atmswitch.ISOObserver) atmswitch.BankLink {
		log := m.Log.With("bank", lc.Key)
		linkTLS := bankTLS
		if lc.TLS != (atmswitch.LinkTLS{}) {
			linkTLS = BankTLS(lc.TLS).linkOptions(log)
		}
		opts := append(slices.Clone(linkTLS), iso.WithLogger(log),
			iso.WithRequestTimeout(cmp.Or(lc.RequestTimeout, c.Switch.AuthTimeout)),
			iso.WithObserver(observe), iso.WithBreaker(breakerFailures, cmp.Or(c.BreakerCooldown, iso.DefaultBreakerCooldown)),
			iso.WithLateReply(func(mti, stan, rrn string) {
				log.Warn("late or unmatched reply from the bank; ignored", "mti", mti, "stan", stan, "rrn", rrn)
			}))
		if lc.EchoInterval > 0 {
			opts = append(opts, iso.WithEchoInterval(lc.EchoInterval))
		}
		if lc.Standby != "" {
			opts = append(opts, iso.WithStandby(lc.Standby))
		}
		return iso.NewClient(lc.Addr, opts...)
	}
	lcfg := atmswitch.DefaultLinksConfig()
	lcfg.Default, lcfg.Outbox = c.BankAddr, c.Outbox
	if c.LinksRefresh > 0 {
		lcfg.Refresh = c.LinksRefresh
	}
	m.Links = atmswitch.NewLinks(lcfg, dial, m.Pool, m.Ledger, m.Log, metrics, clock)
	if err := m.Links.Refresh(ctx); err != nil {
		return err
	}
	instrument(reg, metrics, m.Pool, m.Ledger, m.Keys, m.BankUp, m.Redis)
	keyring, err := m.openKeyring(ctx, clock)
	if err != nil {
		return err
	}
	m.Callbacks = atmswitch.NewCallbacks(c.Callbacks, m.Pool, m.Ledger, c.Switch.Secret, m.Log, metrics, clock)
	m.Service = atmswitch.NewService(c.Switch, atmswitch.Deps{
		Pool: m.Pool, Ledger: m.Ledger, Links: m.Links, Codes: keyring, Gate: gate, Log: m.Log, Metrics: metrics,
		Clock: clock,
	})
	proxies, _ := c.proxies() // checked above
	m.Auth = auth.New(m.Pool, auth.WithClientSecretKey([]byte(c.Secret)), auth.WithRegisterer(reg), auth.WithLogger(m.Log),
		auth.WithTrustedProxies(proxies...))
	idems := idem.New(m.Keys, idem.WithSealKey([]byte(c.Secret)))
	// The hot routes' records: lazy unless -idempotency-durable.
	hot := idems
	if !c.KeysDurable {
		hot = idem.New(m.Keys, idem.WithSealKey([]byte(c.Secret)), idem.WithLazyCommit())
	}
	https, _ := c.https() // checked above
	if m.Addr, err = m.serve(c.Listen, withTransportSecurity(m.routes(metrics, idems, hot), https)); err != nil {
		return err
	}
	if c.AdminListen != "" {
		if m.AdminAddr, err = m.serve(c.AdminListen, adminHandler(reg)); err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
	}
	m.startWorkers(idems, clock)
	return nil
}

// BankUp reports whether every bank link is connected and signed on
// (softatm_iso_link_up; softatm_bank_link_up has each).
func (m *Main) BankUp() bool {
	links := m.Links.Status()
	for _, l := range links {
		if !l.Up {
			return false
		}
	}
	return len(links) > 0
}

// openPool opens and pings the database.
func (m *Main) openPool(ctx context.Context) error {
	pcfg, err := pgxpool.ParseConfig(m.Config.DatabaseURL)
	if err != nil {
		return fmt.Errorf("parsing DATABASE_URL: %w", err)
	}
	pcfg.MaxConns = m.Config.PoolMax
	pcfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error { ledger.RegisterTypes(c.TypeMap()); return nil }
	if m.Pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	if err := m.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// openRedis makes the Redis client of the replay gate: of the server at
// redisURL, or, with sentinels, of the primary they name, followed across a
// failover (go-redis asks the Sentinels again when its connections fail).
// Redis' replication is asynchronous, so a failover may lose recent gate
// keys: the database stays the record (DESIGN.md), Redis only the gate.
func openRedis(redisURL string, sentinels []string, master string, t Timeouts) (*redis.Client, error) {
	opt := &redis.Options{}
	if redisURL != "" {
		var err error
		if opt, err = redis.ParseURL(redisURL); err != nil {
			return nil, fmt.Errorf("parsing REDIS_URL: %w", err)
		}
	}
	if len(sentinels) > 0 {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: master, SentinelAddrs: sentinels, DB: opt.DB, Username: opt.Username, Password: opt.Password,
			DialTimeout: t.RedisDial, ReadTimeout: t.RedisRead, WriteTimeout: t.RedisWrite,
			MaxRetries: 1, DisableIdentity: true,
		}), nil
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = t.RedisDial, t.RedisRead, t.RedisWrite
	opt.MaxRetries = 1
	// One dial per attempt: go-redis otherwise dials 5 times 100 ms
	// apart, so with Redis refusing connections every gate call took
	// ~1 s and a payout ~4 s before falling back (switch/faults
	// scenario 5).
	opt.DialerRetries = 1
	// No CLIENT SETINFO on connect: Redis before 7.2 refuses it, and the
	// refused pipeline would count as a Redis error in the metrics.
	opt.DisableIdentity = true
	return redis.NewClient(opt), nil
}

// openKeyring loads the signing keys. With a key-encryption key it first
// seals every seed still in clear (written by `softatm keys` or `admin
// load-demo` without one), so that from then on the database holds none;
// without one it runs on clear seeds with a warning, and refuses to start
// when a seed is sealed (the keyring's load fails with code.ErrSealed).
func (m *Main) openKeyring(ctx context.Context, clock func() time.Time) (*code.Keyring, error) {
	kek, err := m.Config.kek()
	if err != nil {
		return nil, err
	}
	var opts []code.PGOption
	if kek == nil {
		m.Log.Warn("no key-encryption key (-key-file): signing keys' private seeds are kept in clear in the database")
	} else {
		opts = append(opts, code.WithKEK(kek))
		n, err := code.NewPGKeyStore(m.Pool, opts...).Rewrap(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("sealing signing keys with %s: %w", kek, err)
		}
		if n > 0 {
			m.Log.Info("sealed signing keys' private seeds", "keys", n, "kek", kek.Fingerprint())
		}
	}
	c := m.Config.Switch
	keyring := code.NewKeyring(code.NewPGKeyStore(m.Pool, opts...), code.WithSkew(c.ClockSkew),
		code.WithMaxLifetime(c.CodeTTL), code.WithClock(clock))
	if err := keyring.Load(ctx); err != nil {
		return nil, fmt.Errorf("loading signing keys (`softatm keys generate` makes one): %w", err)
	}
	return keyring, nil
}

// routes is the public API, the kiosk and finance pages, and the health
// checks. /metrics and /debug/ are not here: they are on the admin listener.
// hot keeps the idempotency records of create, scan and confirm, whose
// handlers answer a retry from the business row (a create's key is bound
// to its withdrawal, a confirm's to its payout, a scan re-claims for its
// teller), so they may be lazy; idems keeps every other route's.
func (m *Main) routes(metrics *atmswitch.Metrics, idems, hot *idem.Store) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.Handler) { mux.Handle(pattern, metrics.Instrument(pattern, h)) }
	bankAPI := &atmswitch.BankAPI{Service: m.Service, Log: m.Log, BankOf: func(r *http.Request) (string, bool) {
		b, ok := auth.BankClientFrom(r.Context())
		return b.BankCode, ok
	}, ClientOf: func(r *http.Request) string { b, _ := auth.BankClientFrom(r.Context()); return b.ID },
		MaxWait: min(atmswitch.MaxWait, m.Config.Timeouts.HTTPWrite/2)}
	bankAuth := m.Auth.RequireBankClient
	bankIdem := func(h http.HandlerFunc) http.Handler { return bankAuth(idems.Middleware(auth.BankClientScope)(h)) }
	route("POST /v1/withdrawals", bankAuth(hot.Middleware(auth.BankClientScope)(http.HandlerFunc(bankAPI.Create))))
	route("GET /v1/withdrawals/{id}", bankAuth(http.HandlerFunc(bankAPI.Get)))
	route("GET /v1/withdrawals", bankAuth(http.HandlerFunc(bankAPI.List)))
	route("GET /v1/limits", bankAuth(http.HandlerFunc(bankAPI.Limits)))
	route("POST /v1/withdrawals/{id}/cancel", bankIdem(bankAPI.Cancel))
	route("GET /v1/withdrawals/{id}/qr.png", bankAuth(http.HandlerFunc(bankAPI.QRPNG)))
	route("POST /v1/deposits", bankIdem(bankAPI.CreateDeposit))

	tapi := &teller.API{Service: m.Service, Auth: m.Auth, Pool: m.Pool, Log: m.Log}
	asTeller := m.Auth.RequireStaff(auth.RoleTeller)
	tellerIdem := func(h http.HandlerFunc) http.Handler { return asTeller(idems.Middleware(auth.StaffScope)(h)) }
	route("POST /v1/teller/login", http.HandlerFunc(tapi.Login))
	route("POST /v1/staff/login", http.HandlerFunc(tapi.Login))
	route("POST /v1/staff/logout", http.HandlerFunc(tapi.Logout))
	route("GET /v1/staff/me", m.Auth.RequireStaff(auth.RoleTeller, auth.RoleFinance, auth.RoleAdmin)(http.HandlerFunc(tapi.Me)))
	route("POST /v1/teller/scan", asTeller(hot.Middleware(auth.StaffScope)(tapi.AsTeller(tapi.Scan))))
	route("POST /v1/teller/confirm", asTeller(hot.Middleware(auth.StaffScope)(tapi.AsTeller(tapi.Confirm))))
	route("POST /v1/teller/release", tellerIdem(tapi.AsTeller(tapi.Release)))
	route("GET /v1/teller/till", asTeller(tapi.AsTeller(tapi.Till)))
	route("GET /v1/teller/receipts/{id}", asTeller(tapi.AsTeller(tapi.Receipt)))
	route("POST /v1/teller/deposits/lookup", tellerIdem(tapi.AsTeller(tapi.LookupAccount)))
	route("POST /v1/teller/deposits/walkin", tellerIdem(tapi.AsTeller(tapi.WalkIn)))
	route("POST /v1/teller/deposits/confirm", tellerIdem(tapi.AsTeller(tapi.ConfirmDeposit)))
	route("POST /v1/teller/deposits/release", tellerIdem(tapi.AsTeller(tapi.ReleaseDeposit)))
	route("GET /v1/teller/deposits/{id}/receipt", asTeller(tapi.AsTeller(tapi.DepositReceipt)))

	reconLines := atmswitch.NewReconLines(m.Pool)
	fin := &teller.Finance{API: tapi, Ledger: m.Ledger, Recon: recon.New(m.Pool, reconLines), Day: reconLines, Now: m.clock}
	asFinance := m.Auth.RequireStaff(auth.RoleFinance, auth.RoleAdmin)
	finIdem := func(h http.HandlerFunc) http.Handler { return asFinance(idems.Middleware(auth.StaffScope)(h)) }
	route("GET /v1/finance/days", asFinance(http.HandlerFunc(fin.Days)))
	route("GET /v1/finance/days/{date}/settlement", asFinance(http.HandlerFunc(fin.Settlement)))
	route("GET /v1/finance/days/{date}/close", asFinance(http.HandlerFunc(fin.Closing)))
	route("POST /v1/finance/days/{date}/close", finIdem(fin.Close))
	route("POST /v1/finance/recon/{bank}/{date}", finIdem(fin.Import))
	route("POST /v1/finance/recon", finIdem(fin.Import))
	route("GET /v1/finance/recon/{bank}/{date}", asFinance(http.HandlerFunc(fin.Report)))
	route("POST /v1/finance/recon/items/{id}/resolve", finIdem(fin.ResolveItem))
	route("GET /v1/finance/exceptions", asFinance(http.HandlerFunc(fin.Exceptions)))
	route("POST /v1/finance/exceptions/{id}/resolve", finIdem(fin.ResolveException))
	route("POST /v1/finance/tills/{po}/replenish", finIdem(fin.Replenish))
	route("POST /v1/finance/tills/{po}/collect", finIdem(fin.Collect))
	route("POST /v1/finance/tills/{po}/count", finIdem(fin.Count))
	route("POST /v1/finance/days/{date}/banks/{bank}/settle", finIdem(fin.SettleBank))
	route("POST /v1/teller/till/count", tellerIdem(tapi.AsTeller(fin.TellerCount)))
	route("GET /v1/finance/forecast", asFinance(http.HandlerFunc(fin.Forecast)))
	route("GET /v1/finance/words", asFinance(http.HandlerFunc(fin.WordsHandler)))
	route("GET /v1/finance/large-cash", asFinance(http.HandlerFunc(fin.LargeCash)))

	teller.MountPages(mux, m.Config.Demo)
	if m.Config.Demo {
		demo := &teller.Demo{Service: m.Service, Pool: m.Pool, Log: m.Log}
		demo.Mount(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		atmswitch.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", m.ready)
	return softatm.WithJSONMuxErrors(mux)
}

// withTransportSecurity, when clients reach the switch over HTTPS (a TLS
// proxy in front, -public-url https://...), tells browsers to keep to HTTPS
// (HSTS) and marks each request so that the session cookie is Secure.
// Without it, nothing changes: a plain-HTTP deployment (the demo) must not
// send HSTS, which would lock browsers out of it.
func withTransportSecurity(next http.Handler, https bool) http.Handler {
	if !https {
		return next
	}
	hsts := fmt.Sprintf("max-age=%d", int(hstsMaxAge/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hsts)
		next.ServeHTTP(w, r.WithContext(auth.WithHTTPS(r.Context())))
	})
}

// adminHandler serves the operator's endpoints: Prometheus metrics and the
// Go profiler. pprof's cmdline handler is left out: it would print the
// command line, and -secret may be on it.
func adminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serve listens on addr and serves h there until Close.
func (m *Main) serve(addr string, h http.Handler) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	t := m.Config.Timeouts
	srv := &http.Server{Handler: h, ReadHeaderTimeout: t.HTTPReadHeader, ReadTimeout: t.HTTPRead,
		WriteTimeout: t.HTTPWrite, IdleTimeout: t.HTTPIdle}
	m.srvs = append(m.srvs, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr(), nil
}

// startWorkers starts the outbox, the sweeper and the purge; Close stops
// them.
func (m *Main) startWorkers(idems *idem.Store, clock func() time.Time) {
	c := m.Config
	// Their commits are no caller's (ledger.Background): counted apart.
	bg, cancel := context.WithCancel(ledger.Background(context.Background()))
	m.cancel = cancel
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		done := make(chan struct{}, 4)
		go func() { m.Links.Run(bg); done <- struct{}{} }()
		go func() { m.Callbacks.Run(bg); done <- struct{}{} }()
		go func() { m.Service.RunSweeper(bg, c.SweepEvery); done <- struct{}{} }()
		go func() { m.purge(bg, idems, c.PurgeEvery, c.KeysKeep, clock); done <- struct{}{} }()
		for range cap(done) {
			<-done
		}
	}()
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
	ctx, cancel := context.WithTimeout(r.Context(), m.Config.Timeouts.Ready)
	defer cancel()
	status := map[string]string{"database": "up", "redis": "up", "bank_link": "up"}
	code := http.StatusOK
	if err := m.Pool.Ping(ctx); err != nil {
		status["database"], code = "down", http.StatusServiceUnavailable
		if softatm.DatabaseUnavailable(err) {
			// Callers get database_unavailable with a Retry-After meanwhile.
			status["database"] = "no primary"
		}
	}
	if m.Redis == nil {
		status["redis"] = "not configured"
	} else if err := m.Redis.Ping(ctx).Err(); err != nil {
		// The switch still pays QR codes without Redis, from the database.
		status["redis"], code = "down", http.StatusServiceUnavailable
	}
	// Each bank link is reported; the switch is not ready only when no
	// link is up: a bank that is down is refused by its own circuit, and
	// the other banks' withdrawals still go through.
	links := m.Links.Status()
	anyUp := false
	for _, l := range links {
		st := "up"
		switch {
		case !l.Up:
			st = "down"
		case l.CircuitOpen:
			st = "circuit_open"
		default:
			anyUp = true
		}
		status["bank_link:"+l.Key] = st
	}
	if !anyUp {
		status["bank_link"], code = "down", http.StatusServiceUnavailable
	}
	atmswitch.WriteJSON(w, code, status)
}

// Close stops serving, lets in-flight requests finish, and closes every
// connection.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.Timeouts.Shutdown)
	defer cancel()
	var errs []error
	for _, srv := range m.srvs {
		errs = append(errs, srv.Shutdown(ctx))
	}
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	if m.Links != nil {
		errs = append(errs, m.Links.Close())
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

// splitList splits a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var m Main
	m.Config.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	admin := "none"
	if m.AdminAddr != nil {
		admin = "http://" + m.AdminAddr.String()
	}
	m.Log.Info("softatm serving", "http", "http://"+m.Addr.String(), "admin", admin, "default_bank_link", m.Config.BankAddr, "bank_links", len(m.Links.Status()))
	<-ctx.Done()
	return m.Close()
}
