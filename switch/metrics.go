package atmswitch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/ledger"
)

// Metrics are the switch's Prometheus collectors, on a registry of our own.
// Label values are bounded: routes are patterns, outcomes are error codes,
// states and message kinds are enums, MTIs and response codes are the
// profile's (anything else is "other"), Redis commands are the few the
// switch sends (anything else is "other").
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	transitions   *prometheus.CounterVec
	paidAmount    prometheus.Counter
	redisFallback prometheus.Counter
	outboxSent    *prometheus.CounterVec
	outboxDepth   prometheus.Gauge
	outboxOldest  prometheus.Gauge
	// outboxExceptions counts messages that gave up and became exceptions
	// (and bank replies kept as exceptions), by kind: until now only the
	// finance page showed them; deploy/prometheus/alerts.yml alerts on it.
	outboxExceptions *prometheus.CounterVec

	isoMessages *prometheus.CounterVec
	isoRTT      *prometheus.HistogramVec
	ledgerTx    *prometheus.HistogramVec
	redisTime   *prometheus.HistogramVec
	redisErrors *prometheus.CounterVec

	// Numeric entry (see Service.identify). They replace the switch-wide
	// lockout: deploy/prometheus/alerts.yml alerts on their rates.
	numericFailures     *prometheus.CounterVec
	numericRefusals     *prometheus.CounterVec
	numericCodesBlocked prometheus.Counter
}

// latencyBuckets cover a sub-millisecond Redis call to a 10 s bank timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics registers the collectors on reg (a new registry when nil).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_http_requests_total", Help: "HTTP requests by route and outcome (error code or ok).",
		}, []string{"route", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "softatm_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_withdrawal_transitions_total", Help: "Withdrawals entering each state.",
		}, []string{"state"}),
		paidAmount: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softatm_paid_amount_dong_total", Help: "Cash paid out, in dong.",
		}),
		redisFallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softatm_redis_fallbacks_total", Help: "Scans that went on without the Redis fast gate.",
		}),
		outboxSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_outbox_sends_total", Help: "Advices and reversals sent, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "softatm_outbox_pending", Help: "Messages waiting to be sent to the bank.",
		}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "softatm_outbox_oldest_age_seconds", Help: "Age of the oldest message waiting to be sent.",
		}),
		outboxExceptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_outbox_exceptions_total",
			Help: "Messages to the bank that became exceptions for finance, by kind (advice, reversal: gave up or refused; reply_mismatch: a reply kept).",
		}, []string{"kind"}),
		isoMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_iso_requests_total",
			Help: "ISO 8583 requests sent to the bank, by request MTI and the reply's response code (none: no usable reply).",
		}, []string{"mti", "response_code"}),
		isoRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "softatm_iso_round_trip_seconds", Help: "Time from sending an ISO 8583 request to its reply (or giving up), by request MTI.",
			Buckets: latencyBuckets,
		}, []string{"mti"}),
		ledgerTx: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "softatm_ledger_commit_duration_seconds",
			Help:    "Time for one ledger unit to commit (queueing for its batch and retries included), by unit kind and outcome.",
			Buckets: latencyBuckets,
		}, []string{"unit", "outcome"}),
		redisTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "softatm_redis_command_duration_seconds", Help: "Redis command latency, by command.",
			Buckets: latencyBuckets,
		}, []string{"command"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_redis_errors_total", Help: "Redis commands that failed (a missing key is not a failure), by command.",
		}, []string{"command"}),
		numericFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_numeric_failures_total",
			Help: "Wrong numeric code entries evaluated, switch-wide, by reason (malformed, unknown_code, wrong_phone).",
		}, []string{"reason"}),
		numericRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_numeric_refusals_total",
			Help: "Numeric code entries refused unevaluated, by the cap that refused them (kiosk, teller, post_office, or code: blocked for numeric entry).",
		}, []string{"scope"}),
		numericCodesBlocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softatm_numeric_codes_blocked_total",
			Help: "Codes blocked for numeric entry after too many wrong phone digits (their QR codes still pay).",
		}),
	}
	for _, r := range []string{"malformed", "unknown_code", "wrong_phone"} {
		m.numericFailures.WithLabelValues(r) // export 0s, so that rate() sees the first failure
	}
	for _, sc := range []string{scopeKiosk, scopeTeller, scopePostOffice, scopeCode} {
		m.numericRefusals.WithLabelValues(sc)
	}
	for _, k := range []string{string(MsgAdvice), string(MsgReversal), kindReplyMismatch} {
		m.outboxExceptions.WithLabelValues(k) // export 0s, so that increase() sees the first exception
	}
	reg.MustRegister(m.requests, m.latency, m.transitions, m.paidAmount, m.redisFallback,
		m.outboxSent, m.outboxDepth, m.outboxOldest, m.outboxExceptions,
		m.isoMessages, m.isoRTT, m.ledgerTx, m.redisTime, m.redisErrors,
		m.numericFailures, m.numericRefusals, m.numericCodesBlocked,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_retries_total",
			Help: "Serialization conflicts and deadlocks after which a database transaction was re-run (whole process).",
		}, func() float64 { return float64(ledger.Retries()) }),
	)
	return m
}

func (m *Metrics) transition(s State) { m.transitions.WithLabelValues(string(s)).Inc() }

// knownMTIs and knownRCs bound the ISO labels.
var (
	knownMTIs = map[string]bool{
		iso.MTIAuthRequest: true, iso.MTIAdvice: true, iso.MTIAdviceRepeat: true, iso.MTIReversal: true,
		iso.MTIReversalRepeat: true, iso.MTINetworkRequest: true, iso.MTIFinancialRequest: true,
	}
	knownRCs = map[string]bool{
		iso.RCApproved: true, iso.RCDoNotHonour: true, iso.RCInvalidTransaction: true, iso.RCInvalidAmount: true,
		iso.RCInvalidAccount: true, iso.RCFormatError: true, iso.RCInsufficientFunds: true, iso.RCExceedsLimit: true,
		iso.RCIssuerUnavailable: true, iso.RCDuplicate: true, iso.RCSystemError: true,
	}
)

// ObserveISO is the bank client's observer (iso.WithObserver): one call per
// request, with the reply's response code ("" when there was none).
func (m *Metrics) ObserveISO(mti, responseCode string, rtt time.Duration, err error) {
	if !knownMTIs[mti] {
		mti = "other"
	}
	rc := responseCode
	switch {
	case err != nil || rc == "":
		rc = "none"
	case !knownRCs[rc]:
		rc = "other"
	}
	m.isoMessages.WithLabelValues(mti, rc).Inc()
	m.isoRTT.WithLabelValues(mti).Observe(rtt.Seconds())
}

// Committer exports the counters of the ledger committer called name
// (label committer): batches, the units they carried, and the time spent
// running them (its rate is the committer's utilisation; near 1 it is the
// bottleneck).
func (m *Metrics) Committer(name string, l *ledger.Ledger) {
	labels := prometheus.Labels{"committer": name}
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_batches_total", Help: "Batch transactions run by a ledger committer.", ConstLabels: labels,
		}, func() float64 { return float64(l.Stats().Batches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_batch_units_total", Help: "Units (state changes with their transfers) carried by those batches.", ConstLabels: labels,
		}, func() float64 { return float64(l.Stats().Units) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_committer_busy_seconds_total", Help: "Time a ledger committer spent running batches.", ConstLabels: labels,
		}, func() float64 { return l.Stats().Busy.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_round_trips_total", Help: "Round trips to the database of a ledger committer's batches (BEGIN and COMMIT included).", ConstLabels: labels,
		}, func() float64 { return float64(l.Stats().RoundTrips) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_lazy_batches_total", Help: "Batches a ledger committer committed without waiting for their WAL flush (every unit lazy: idempotency records).", ConstLabels: labels,
		}, func() float64 { return float64(l.Stats().LazyBatches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_lazy_units_total", Help: "Units carried by those batches: batch_units_total minus these are the durable commits callers waited for.", ConstLabels: labels,
		}, func() float64 { return float64(l.Stats().LazyUnits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_background_units_total", Help: "Durable units committed for no caller (the outbox's, the sweeper's, the callbacks', the purge's).", ConstLabels: labels,
		}, func() float64 { return float64(l.Stats().BackgroundUnits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "softatm_ledger_direct_units_total", Help: "Statements committed at once, outside the committer's batches (a claim, a withdrawal's first row): each a durable commit its caller waited for.", ConstLabels: labels,
		}, func() float64 { return float64(l.Stats().DirectUnits) }),
	)
	// The same by batch size (label size, ledger.SizeBuckets): busy seconds
	// over units of one size is the committer's time per unit at that size.
	for i := range ledger.SizeBuckets {
		labels := prometheus.Labels{"committer": name, "size": ledger.SizeBucketName(i)}
		m.Registry.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "softatm_ledger_batches_by_size_total", Help: "Batch transactions of a ledger committer, by batch size (units).", ConstLabels: labels,
			}, func() float64 { return float64(l.Stats().BySize[i].Batches) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "softatm_ledger_batch_units_by_size_total", Help: "Units carried by a ledger committer's batches, by batch size.", ConstLabels: labels,
			}, func() float64 { return float64(l.Stats().BySize[i].Units) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "softatm_ledger_committer_busy_seconds_by_size_total", Help: "Time a ledger committer spent running batches, by batch size.", ConstLabels: labels,
			}, func() float64 { return l.Stats().BySize[i].Busy.Seconds() }),
		)
	}
}

// LinkUp exports up() (the bank link is signed on) as softatm_iso_link_up.
func (m *Metrics) LinkUp(up func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "softatm_iso_link_up", Help: "1 when the ISO 8583 link to the bank is connected and signed on.",
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}

// redisCommands bound the command label; the switch sends only these.
var redisCommands = map[string]bool{
	"get": true, "set": true, "del": true, "incr": true, "pexpire": true, "pttl": true, "exists": true,
	"eval": true, "evalsha": true, "ping": true, "pipeline": true, "hello": true, "client": true,
}

// ObserveRedis records one Redis command (or pipeline, as "pipeline").
// answered is true for an error that is Redis's normal answer (no such
// key, NOSCRIPT): it is timed but not counted as a failure.
func (m *Metrics) ObserveRedis(command string, d time.Duration, err error, answered bool) {
	if !redisCommands[command] {
		command = "other"
	}
	m.redisTime.WithLabelValues(command).Observe(d.Seconds())
	if err != nil && !answered {
		m.redisErrors.WithLabelValues(command).Inc()
	}
}

// Withdrawal-state gauge settings.
const (
	// stateCountEvery bounds how often a scrape runs the count queries; in
	// between, the last counts are served.
	stateCountEvery = 10 * time.Second
	// stateCountTimeout bounds the count queries of one scrape.
	stateCountTimeout = 2 * time.Second
	// finishedWindow: finished withdrawals are counted over this window
	// only, so the query stays bounded as the table grows.
	finishedWindow = 24 * time.Hour
)

var (
	liveStates     = []string{string(StateRequested), string(StateReserved), string(StateClaimed), string(StatePaid)}
	finishedStates = []string{string(StateCompleted), string(StateDeclined), string(StateFailed), string(StateCancelled), string(StateExpired)}
)

// stateCollector is softatm_withdrawals{state}: every withdrawal still in a
// live state (requested, reserved, claimed, paid), and those that finished
// (completed, declined, failed, cancelled, expired) among the withdrawals
// created in the last 24 hours. Both queries use the (state, created_at)
// index.
type stateCollector struct {
	store *pgStore
	desc  *prometheus.Desc
	now   func() time.Time

	mu     sync.Mutex
	at     time.Time
	counts map[string]float64
}

// NewStateCollector returns the withdrawals-by-state collector.
func NewStateCollector(pool *pgxpool.Pool) prometheus.Collector {
	return &stateCollector{store: newPGStore(pool, nil, nil), now: time.Now, desc: prometheus.NewDesc("softatm_withdrawals",
		"Withdrawals by state: all in live states; finished ones among those created in the last 24 hours.",
		[]string{"state"}, nil)}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil || c.now().Sub(c.at) >= stateCountEvery {
		counts, err := c.count()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			return
		}
		c.counts, c.at = counts, c.now()
	}
	for _, states := range [][]string{liveStates, finishedStates} {
		for _, s := range states {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, c.counts[s], s)
		}
	}
}

func (c *stateCollector) count() (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stateCountTimeout)
	defer cancel()
	counts, err := c.store.CountByState(ctx, liveStates, finishedStates, c.now().Add(-finishedWindow))
	if err != nil {
		return nil, errors.Join(errors.New("counting withdrawals by state"), err)
	}
	return counts, nil
}
