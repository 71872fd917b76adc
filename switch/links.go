package atmswitch

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// One ISO 8583 link per bank.
//
// Links reads the banks table (migration 00034) every LinksConfig.Refresh
// and keeps one link per bank that names its own address (link_addr), each
// with its own sign-on, echo, reconnect, STAN space and circuit breaker
// (all inside the BankLink the Dialer makes, an *iso.Client), its own
// store-and-forward worker (an Outbox that leases only its banks'
// messages, and leases nothing while its link is not ready, so a dead
// bank's queue waits and never holds up another bank's), and its own
// metrics labelled bank. Banks with no address of their own share the
// default link (serve's -bank): the single-bank setup needs no bank row
// edit. A withdrawal goes on the link of the bank whose range holds its
// account (Service.Create checks that bank is the caller's).
//
// Decisions:
//   - A change of a bank's address, standby, time-out or echo interval
//     closes its link (signing off) and opens a new one; in-flight
//     requests on the old link end with ErrClosed, which the lifecycle
//     treats as no answer (the 0100 is reversed, an advice is retried).
//   - A suspended bank keeps its link: its creates are refused with
//     bank_unavailable, but what the switch owes it (advices, reversals)
//     is still delivered.
//   - TLS is serve's (-bank-tls-* flags), the same for every link: the
//     Dialer applies it. Per-bank certificates are left for when a bank
//     asks for one.
//   - Every change read from the table is logged (bank added, changed with
//     the fields that changed, removed), so an operator's `softatm admin
//     bank` edit shows in the log of every running switch.

// Link states of a bank (banks.state).
const (
	BankActive    = "active"
	BankSuspended = "suspended"
)

// defaultLinkKey is the key (and bank label) of the link shared by the
// banks with no address of their own.
const defaultLinkKey = "default"

// LinkConfig is one bank link as the banks table describes it.
type LinkConfig struct {
	Key            string // the bank's code, or "default" for the shared link
	Addr           string
	Standby        string        // "": none
	RequestTimeout time.Duration // 0: the Dialer's default (serve's -auth-timeout)
	EchoInterval   time.Duration // 0: the Dialer's default (iso.DefaultEchoInterval)
	TLS            LinkTLS       // zero: the Dialer's default (serve's -bank-tls-*)
}

// LinkTLS is a bank's own TLS on its link (migration 00037): PEM files on
// the switch's host. Any field set: the link speaks TLS with these, never
// plain TCP.
type LinkTLS struct {
	CAFile     string // the CAs that sign the bank's certificate; "": the system's roots
	CertFile   string // the switch's client certificate, for a bank that asks for one
	KeyFile    string // its key
	ServerName string // the name the bank's certificate must carry; "": the host of the address
}

// BankLink is a Bank with a lifetime; *iso.Client implements it.
type BankLink interface {
	Bank
	// Ready: a request sent now would go out (up, circuit not open).
	Ready() bool
	CircuitOpen() bool
	Close() error
}

// ISOObserver is called after every request on a link (iso.WithObserver).
type ISOObserver func(mti, responseCode string, rtt time.Duration, err error)

// Dialer opens a link; it returns at once and the link connects in the
// background.
type Dialer func(cfg LinkConfig, observe ISOObserver) BankLink

// LinksConfig configures the registry.
type LinksConfig struct {
	// Default is the address of the link shared by banks with no
	// link_addr (serve's -bank); "": such banks have no link, and their
	// creates are refused with bank_unavailable.
	Default string
	// Refresh is how often the banks table is read again (default 5 s,
	// bankRangesRefresh: a bank edit is in force within it).
	Refresh time.Duration
	// Outbox is each link's worker's configuration; Owner gets the link's
	// key appended.
	Outbox OutboxConfig
}

// DefaultLinksConfig returns the defaults.
func DefaultLinksConfig() LinksConfig {
	return LinksConfig{Refresh: bankRangesRefresh, Outbox: DefaultOutboxConfig()}
}

// BankRow is what Links reads of one bank.
type BankRow struct {
	Code      string
	Ranges    []string
	Limits    BankLimits
	Link      LinkConfig // Key is the bank's code; Addr "" uses the default link
	Suspended bool
}

// Links is the registry of bank links.
type Links struct {
	cfg    LinksConfig
	dial   Dialer
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
	log    *slog.Logger
	m      *Metrics
	now    func() time.Time
	isoReq *prometheus.CounterVec

	refreshMu sync.Mutex // one Refresh at a time
	rows      map[string]BankRow

	mu        sync.RWMutex
	links     map[string]*linkRun // link key → running link
	route     map[string]string   // bank code → link key
	suspended map[string]bool
	runCtx    context.Context // set by Run: the outbox workers' context
	workers   sync.WaitGroup
}

// linkRun is one running link and its outbox worker.
type linkRun struct {
	cfg    LinkConfig
	link   BankLink
	outbox *Outbox
	banks  []string // the banks it serves; read under Links.mu
	stop   context.CancelFunc
	done   chan struct{} // closed when its worker has stopped; nil until started
}

// NewLinks returns a registry; call Refresh once (the links start
// connecting), then Run.
func NewLinks(cfg LinksConfig, dial Dialer, pool *pgxpool.Pool, l *ledger.Ledger, log *slog.Logger, m *Metrics, now func() time.Time) *Links {
	if cfg.Refresh <= 0 {
		cfg.Refresh = bankRangesRefresh
	}
	if now == nil {
		now = time.Now
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.Default()
	}
	ls := &Links{cfg: cfg, dial: dial, pool: pool, ledger: l, log: log.With("component", "links"), m: m, now: now,
		links: map[string]*linkRun{}, route: map[string]string{}, suspended: map[string]bool{}}
	ls.isoReq = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "softatm_bank_iso_requests_total",
		Help: "ISO 8583 requests sent on each bank's link, by bank (default: the shared -bank link), request MTI and response code (none: no usable reply).",
	}, []string{"bank", "mti", "rc"})
	m.Registry.MustRegister(ls.isoReq, linksCollector{ls})
	return ls
}

// observer is a link's ISO observer: the switch-wide metrics and the
// bank-labelled counter.
func (l *Links) observer(key string) ISOObserver {
	return func(mti, rc string, rtt time.Duration, err error) {
		l.m.ObserveISO(mti, rc, rtt, err)
		mtiL, rcL := mti, rc
		if !knownMTIs[mtiL] {
			mtiL = "other"
		}
		switch {
		case err != nil || rcL == "":
			rcL = "none"
		case !knownRCs[rcL]:
			rcL = "other"
		}
		l.isoReq.WithLabelValues(key, mtiL, rcL).Inc()
	}
}

// ReadBankRows reads every bank's routing, limits and link.
func ReadBankRows(ctx context.Context, pool *pgxpool.Pool) (map[string]BankRow, error) {
	rows, err := pool.Query(ctx, `SELECT code, account_ranges, amount_min, amount_max, amount_multiple, account_daily_max,
		link_addr, link_standby, link_timeout_ms, link_echo_ms, state,
		link_tls_ca, link_tls_cert, link_tls_key, link_tls_server_name FROM banks`)
	if err != nil {
		return nil, err
	}
	out := map[string]BankRow{}
	var (
		b                 BankRow
		timeoutMs, echoMs *int64
		state             string
	)
	_, err = pgx.ForEachRow(rows, []any{&b.Code, &b.Ranges, &b.Limits.AmountMin, &b.Limits.AmountMax, &b.Limits.AmountMultiple,
		&b.Limits.AccountDailyMax, &b.Link.Addr, &b.Link.Standby, &timeoutMs, &echoMs, &state,
		&b.Link.TLS.CAFile, &b.Link.TLS.CertFile, &b.Link.TLS.KeyFile, &b.Link.TLS.ServerName}, func() error {
		b.Link.Key = b.Code
		if timeoutMs != nil {
			b.Link.RequestTimeout = time.Duration(*timeoutMs) * time.Millisecond
		}
		if echoMs != nil {
			b.Link.EchoInterval = time.Duration(*echoMs) * time.Millisecond
		}
		b.Suspended = state == BankSuspended
		out[b.Code] = b
		b, timeoutMs, echoMs = BankRow{}, nil, nil
		return nil
	})
	return out, err
}

// Refresh reads the banks table, logs what changed, and opens, replaces
// or closes links to match it.
func (l *Links) Refresh(ctx context.Context) error {
	l.refreshMu.Lock()
	defer l.refreshMu.Unlock()
	rows, err := ReadBankRows(ctx, l.pool)
	if err != nil {
		return fmt.Errorf("reading the banks: %w", err)
	}
	l.logChanges(rows)
	l.rows = rows

	// The links the table asks for, and the banks each serves.
	want := map[string]LinkConfig{}
	serves := map[string][]string{}
	route := map[string]string{}
	suspended := map[string]bool{}
	for code, b := range rows {
		cfg := b.Link
		if cfg.Addr == "" {
			if l.cfg.Default == "" {
				continue // no link: its creates are refused
			}
			cfg = LinkConfig{Key: defaultLinkKey, Addr: l.cfg.Default}
		}
		want[cfg.Key] = cfg
		serves[cfg.Key] = append(serves[cfg.Key], code)
		route[code] = cfg.Key
		suspended[code] = b.Suspended
	}

	l.mu.Lock()
	var closing []*linkRun
	for key, lr := range l.links {
		if cfg, ok := want[key]; !ok || cfg != lr.cfg {
			closing = append(closing, lr)
			delete(l.links, key)
			if ok {
				l.log.Info("bank link changed; reconnecting", "bank", key, "addr", cfg.Addr, "standby", cfg.Standby,
					"timeout", cfg.RequestTimeout, "echo", cfg.EchoInterval)
			} else {
				l.log.Info("bank link closed", "bank", key)
			}
		}
	}
	for key, cfg := range want {
		lr, ok := l.links[key]
		if !ok {
			lr = l.open(cfg)
			l.links[key] = lr
			l.log.Info("bank link opened", "bank", key, "addr", cfg.Addr, "standby", cfg.Standby)
			if l.runCtx != nil {
				l.startWorker(lr)
			}
		}
		lr.banks = serves[key]
		slices.Sort(lr.banks)
	}
	l.route, l.suspended = route, suspended
	l.mu.Unlock()

	// Outside the lock: a sign-off waits for its reply.
	for _, lr := range closing {
		l.shut(lr)
	}
	return nil
}

// logChanges logs each bank added, changed (naming what) or removed.
func (l *Links) logChanges(rows map[string]BankRow) {
	if l.rows == nil {
		l.log.Info("banks loaded", "banks", len(rows))
		return
	}
	for _, code := range slices.Sorted(maps.Keys(rows)) {
		b := rows[code]
		old, ok := l.rows[code]
		if !ok {
			l.log.Info("bank added", "bank", code, "ranges", strings.Join(b.Ranges, ","), "link", b.Link.Addr)
			continue
		}
		var what []string
		if !slices.Equal(old.Ranges, b.Ranges) {
			what = append(what, "ranges")
		}
		if limitsString(old.Limits) != limitsString(b.Limits) {
			what = append(what, "limits")
		}
		if old.Link != b.Link {
			what = append(what, "link")
		}
		if old.Suspended != b.Suspended {
			what = append(what, "state")
		}
		if len(what) > 0 {
			state := BankActive
			if b.Suspended {
				state = BankSuspended
			}
			l.log.Info("bank changed", "bank", code, "changed", strings.Join(what, ","),
				"ranges", strings.Join(b.Ranges, ","), "limits", limitsString(b.Limits), "link", b.Link.Addr, "state", state)
		}
	}
	for code := range l.rows {
		if _, ok := rows[code]; !ok {
			l.log.Info("bank removed", "bank", code)
		}
	}
}

func limitsString(b BankLimits) string {
	v := func(p *int64) string {
		if p == nil {
			return "default"
		}
		return fmt.Sprint(*p)
	}
	return "min=" + v(b.AmountMin) + " max=" + v(b.AmountMax) + " multiple=" + v(b.AmountMultiple) + " daily=" + v(b.AccountDailyMax)
}

// open dials a link and makes its outbox worker (started by Run).
func (l *Links) open(cfg LinkConfig) *linkRun {
	link := l.dial(cfg, l.observer(cfg.Key))
	ocfg := l.cfg.Outbox
	ocfg.Owner += "-" + cfg.Key
	lr := &linkRun{cfg: cfg, link: link}
	lr.outbox = NewOutbox(ocfg, l.pool, l.ledger, link, l.log.With("bank", cfg.Key), l.m, l.now)
	lr.outbox.banks = func() []string {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return slices.Clone(lr.banks)
	}
	return lr
}

// startWorker runs lr's outbox worker; l.mu is held.
func (l *Links) startWorker(lr *linkRun) {
	ctx, cancel := context.WithCancel(l.runCtx)
	lr.stop, lr.done = cancel, make(chan struct{})
	l.workers.Add(1)
	go func() {
		defer l.workers.Done()
		defer close(lr.done)
		lr.outbox.Run(ctx)
	}()
}

// shut stops a link's worker and closes the link.
func (l *Links) shut(lr *linkRun) {
	if lr.stop != nil {
		lr.stop()
		<-lr.done
	}
	if err := lr.link.Close(); err != nil {
		l.log.Warn("closing bank link", "bank", lr.cfg.Key, "err", err)
	}
}

// Run starts every link's outbox worker and reads the banks table again
// every Refresh until ctx ends; then it stops the workers. Close closes
// the links.
func (l *Links) Run(ctx context.Context) {
	l.mu.Lock()
	l.runCtx = ctx
	for _, lr := range l.links {
		l.startWorker(lr)
	}
	l.mu.Unlock()
	Every(ctx, l.cfg.Refresh, func(ctx context.Context) {
		if err := l.Refresh(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("bank links: refresh failed; keeping the links as they are", "err", err)
		}
	})
	l.workers.Wait()
}

// Close closes every link (signing off); call it after Run has returned.
func (l *Links) Close() error {
	l.mu.Lock()
	all := slices.Collect(maps.Values(l.links))
	l.links = map[string]*linkRun{}
	l.mu.Unlock()
	// In parallel: each sign-off may wait its whole time-out on a silent
	// bank, and forty of them in a row would hold a shutdown for minutes.
	var wg sync.WaitGroup
	for _, lr := range all {
		lr.stop = nil // Run has stopped the workers
		wg.Go(func() { l.shut(lr) })
	}
	wg.Wait()
	return nil
}

// Kick wakes every link's outbox worker.
func (l *Links) Kick() {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, lr := range l.links {
		lr.outbox.Kick()
	}
}

// For returns the link a new withdrawal of bank goes on. It refuses with
// bank_unavailable a bank that has no link or is suspended.
func (l *Links) For(bank string) (BankLink, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	key, ok := l.route[bank]
	lr := l.links[key]
	if !ok || lr == nil {
		return nil, softatm.Errorf(softatm.EBankUnavailable, "no link to bank %s is configured", bank)
	}
	if l.suspended[bank] {
		return nil, softatm.Errorf(softatm.EBankUnavailable, "bank %s is suspended", bank)
	}
	return lr.link, nil
}

// LinkStatus is one link as /readyz and tests see it.
type LinkStatus struct {
	Key         string
	Addr        string
	Banks       []string
	Up          bool
	CircuitOpen bool
}

// Status lists the links, by key.
func (l *Links) Status() []LinkStatus {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]LinkStatus, 0, len(l.links))
	for _, key := range slices.Sorted(maps.Keys(l.links)) {
		lr := l.links[key]
		out = append(out, LinkStatus{Key: key, Addr: lr.cfg.Addr, Banks: slices.Clone(lr.banks), Up: lr.link.Up(), CircuitOpen: lr.link.CircuitOpen()})
	}
	return out
}

// linksCollector exports each link's state, labelled bank.
type linksCollector struct{ l *Links }

var (
	linkUpDesc = prometheus.NewDesc("softatm_bank_link_up",
		"1 when the bank's ISO 8583 link is connected and signed on (bank default: the shared -bank link).", []string{"bank"}, nil)
	linkCircuitDesc = prometheus.NewDesc("softatm_bank_circuit_open",
		"1 while the bank link's circuit breaker refuses requests (the bank left recent requests unanswered).", []string{"bank"}, nil)
	outboxPendingDesc = prometheus.NewDesc("softatm_bank_outbox_pending",
		"Advices and reversals waiting in the outbox, by the withdrawal's bank: a bank whose link is down keeps its own queue.", []string{"bank"}, nil)
)

// linksScrapeTimeout bounds the outbox count a scrape runs.
const linksScrapeTimeout = 2 * time.Second

func (c linksCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- linkUpDesc
	ch <- linkCircuitDesc
	ch <- outboxPendingDesc
}

func (c linksCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, s := range c.l.Status() {
		ch <- prometheus.MustNewConstMetric(linkUpDesc, prometheus.GaugeValue, b(s.Up), s.Key)
		ch <- prometheus.MustNewConstMetric(linkCircuitDesc, prometheus.GaugeValue, b(s.CircuitOpen), s.Key)
	}
	if c.l.pool == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), linksScrapeTimeout)
	defer cancel()
	// Every bank is exported, 0 when nothing waits, so that a queue that
	// empties is seen to.
	rows, err := c.l.pool.Query(ctx, `SELECT b.code, COUNT(o.id) FROM banks b
		LEFT JOIN (outbox o JOIN withdrawals w ON w.id = o.withdrawal_id AND o.state = 'pending') ON w.bank_code = b.code
		GROUP BY b.code`)
	if err != nil {
		c.l.log.Warn("counting the banks' outbox queues", "err", err)
		return
	}
	var (
		bank string
		n    int64
	)
	_, err = pgx.ForEachRow(rows, []any{&bank, &n}, func() error {
		ch <- prometheus.MustNewConstMetric(outboxPendingDesc, prometheus.GaugeValue, float64(n), bank)
		return nil
	})
	if err != nil {
		c.l.log.Warn("counting the banks' outbox queues", "err", err)
	}
}
