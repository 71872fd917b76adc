package atmswitch

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/seal"
)

// Callbacks: the bank app is told, not polled. A bank client may register
// a callback URL and a secret (SetCallback; `softatm admin client
// -callback-url -callback-secret`); every state change of the withdrawals
// that client created is then POSTed to it, signed, until it answers 2xx.
//
// Decisions:
//   - The queue is the callbacks table, and its row is inserted by the same
//     SQL statement that changes the withdrawal's state: moveStmt wraps every
//     move's UPDATE in a CTE (moved) and adds notifyCTE, like the outbox
//     message a transition queues; Answered does the same for the completion
//     (and for "reversed", when the bank acknowledges a 0420). So a state
//     change and its callback commit together or not at all, in the one
//     committer transaction, with no trigger and no second write. Deriving
//     events later from withdrawals.updated_at with a cursor was rejected: it
//     loses the states a withdrawal passes through between two reads
//     (claimed, then paid, then completed within a second), and a cursor over
//     commit-time-unordered timestamps skips rows committed late.
//   - Delivery is at least once; the row's id is the event id (header
//     X-Softatm-Event-Id and "id" in the body) on which the receiver dedupes,
//     which makes it exactly once at the receiver. A retry sends the same body
//     with a fresh timestamp and signature.
//   - Order per withdrawal: a withdrawal's next event is not leased while an
//     earlier one is pending (seq, as in the outbox). An event given up
//     (exception) no longer holds the later ones back; "seq" in the body lets
//     the receiver see the gap. Events of different withdrawals are not
//     ordered.
//   - Signature: X-Softatm-Signature is "sha256=" and the hex HMAC-SHA-256,
//     keyed by the client's callback secret, of the X-Softatm-Timestamp
//     value (Unix seconds), ".", and the body (SignCallback, VerifyCallback).
//     The receiver should refuse a timestamp far from its clock, which stops
//     an old request from being replayed.
//   - A callback that keeps failing becomes an exception after MaxAttempts
//     (kind "callback" in the finance exceptions list, requeue-able) and
//     counts in softatm_callbacks_exceptions_total. A client whose URL was
//     removed after an event was queued gets that event as an exception at
//     once.
//   - The body names the withdrawal by id with its masked account, amount
//     and the state the event led to; never the code itself (the QR payload
//     is a bearer token, and a callback travels further than an API answer).
//   - Redirects are not followed: a 3xx is a failed delivery.

// Callback headers.
const (
	HeaderCallbackEventID   = "X-Softatm-Event-Id"
	HeaderCallbackTimestamp = "X-Softatm-Timestamp"
	HeaderCallbackSignature = "X-Softatm-Signature"
)

// EventReversed is the callback event of a reversal (0420) the bank
// acknowledged: the hold of a failed, cancelled or expired withdrawal is
// released. It is no state change of the lifecycle.
const EventReversed Event = "reversed"

// Limits of callback settings.
const (
	callbackSecretMinLen = 16   // a callback secret is a key, not a password
	callbackURLMaxLen    = 2048 // bytes
	callbackAnswerMax    = 4096 // bytes of a receiver's answer read (and thrown away) so the connection can be reused
	callbackErrorMaxLen  = 500  // bytes of a failure kept in last_error
)

// CallbackConfig bounds the callback worker.
type CallbackConfig struct {
	Owner       string        // this worker's name in lease_owner; unique per instance
	Batch       int           // callbacks leased per pass
	Lease       time.Duration // how long a leased callback is ours; past it another worker may send it
	MaxAttempts int           // after this many failed deliveries a callback becomes an exception
	BackoffMin  time.Duration // first retry delay; doubles per attempt, with jitter
	BackoffMax  time.Duration // longest retry delay
	Poll        time.Duration // idle poll interval
	Timeout     time.Duration // deadline of one delivery (connect, send, answer)
}

// DefaultCallbackConfig returns the defaults: 15 attempts, 1 s doubling to
// at most 10 min, so a receiver has about an hour and a half to come back
// before finance sees the callback.
func DefaultCallbackConfig() CallbackConfig {
	return CallbackConfig{
		Owner:       "callbacks-" + uuid.NewString()[:8],
		Batch:       32,
		Lease:       30 * time.Second,
		MaxAttempts: 15,
		BackoffMin:  time.Second,
		BackoffMax:  10 * time.Minute,
		Poll:        time.Second,
		Timeout:     10 * time.Second,
	}
}

// CallbackEvent is the body of a callback.
type CallbackEvent struct {
	ID         uuid.UUID          `json:"id"`    // the event id: dedupe on it
	Type       string             `json:"type"`  // "withdrawal.<state>", or "withdrawal.reversed"; "deposit.<state>" and "deposit.reversed" for a deposit
	Event      Event              `json:"event"` // the lifecycle event (approve, claim, release, lapse, pay, complete, cancel, expire, decline, fail) or "reversed"
	Seq        int                `json:"seq"`   // 1, 2, ... per withdrawal, in the order of its changes
	OccurredAt time.Time          `json:"occurred_at"`
	Withdrawal CallbackWithdrawal `json:"withdrawal"`
}

// CallbackWithdrawal is what a callback says of its withdrawal.
type CallbackWithdrawal struct {
	ID       uuid.UUID `json:"id"`
	State    State     `json:"state"` // right after the event
	Bank     string    `json:"bank"`
	Account  string    `json:"account"` // masked
	Amount   int64     `json:"amount"`
	Currency string    `json:"currency"`
}

// SignCallback returns the X-Softatm-Signature of a callback body sent
// with the X-Softatm-Timestamp value timestamp.
func SignCallback(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyCallback says whether signature is the signature of body and
// timestamp under secret, in constant time. A receiver also checks the
// timestamp against its clock.
func VerifyCallback(secret []byte, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(SignCallback(secret, timestamp, body)), []byte(signature))
}

// callbackBox seals the callback secrets at rest.
func callbackBox(serverSecret []byte) *seal.Box { return seal.New(serverSecret, "callback secret") }

// SetCallback registers (or, with an empty callbackURL, removes) a bank
// client's callback URL and secret. The URL must be absolute http or https;
// the secret at least 16 characters. serverSecret is the switch's -secret:
// the callback secret is stored sealed with it.
func SetCallback(ctx context.Context, pool *pgxpool.Pool, serverSecret []byte, clientID, callbackURL, secret string) error {
	if len(serverSecret) == 0 {
		return softatm.Errorf(softatm.EInvalid, "the switch's secret is required to store a callback secret")
	}
	if callbackURL != "" {
		if err := checkCallbackURL(callbackURL); err != nil {
			return err
		}
		if len(secret) < callbackSecretMinLen {
			return softatm.Errorf(softatm.EInvalid, "the callback secret must be at least %d characters", callbackSecretMinLen)
		}
		secret = callbackBox(serverSecret).SealText(secret, clientID)
	} else {
		secret = ""
	}
	tag, err := pool.Exec(ctx, `UPDATE bank_clients SET callback_url = $2, callback_secret = $3 WHERE id = $1`,
		clientID, callbackURL, secret)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return softatm.Errorf(softatm.ENotFound, "no bank client %q", clientID)
	}
	return nil
}

func checkCallbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || len(s) > callbackURLMaxLen || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Fragment != "" {
		return softatm.Errorf(softatm.EInvalid, "the callback URL must be an absolute http(s) URL without credentials, at most %d bytes", callbackURLMaxLen)
	}
	return nil
}

// notifyCTE is the CTE (named notified) that queues the callback of the
// row a statement's CTE "moved" changed; moved must return id, client_id
// and state. It inserts nothing when the withdrawal's client has no
// callback URL (or the withdrawal no client). when, if not "", is an extra
// SQL condition.
func notifyCTE(a *sqlArgs, name string, ev Event, at time.Time, from, when string) string {
	cond := "c.callback_url <> ''"
	if when != "" {
		cond += " AND " + when
	}
	return fmt.Sprintf(`%s AS (INSERT INTO callbacks (id, withdrawal_id, client_id, seq, event, state, occurred_at, next_attempt_at)
		SELECT %s, src.id, c.id, COALESCE((SELECT MAX(seq) FROM callbacks WHERE withdrawal_id = src.id), 0) + 1,
			%s, src.state, %s, %s
		FROM %s src JOIN bank_clients c ON c.id = src.client_id WHERE %s)`,
		name, a.add(uuid.New()), a.add(string(ev)), a.add(at), a.add(at), from, cond)
}

// callback is a leased callback with what its delivery needs.
type callback struct {
	event    CallbackEvent
	client   string
	url      string
	secret   string // sealed
	attempts int
}

// Callbacks is the callback worker. Several may run, in several processes:
// a callback is leased before it is sent, as the outbox's messages are.
type Callbacks struct {
	cfg    CallbackConfig
	store  Store
	box    *seal.Box
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	m      *callbackMetrics
}

type callbackMetrics struct {
	sent       *prometheus.CounterVec
	exceptions prometheus.Counter
	pending    prometheus.Gauge
}

// newCallbackMetrics registers the callback collectors on reg, or finds
// those registered already (a second worker on the same registry).
func newCallbackMetrics(reg *prometheus.Registry) *callbackMetrics {
	m := &callbackMetrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_callbacks_sent_total", Help: "Callback deliveries to bank apps, by outcome (ok, http_<class>xx, no_answer).",
		}, []string{"outcome"}),
		exceptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softatm_callbacks_exceptions_total", Help: "Callbacks given up after their last attempt (finance sees them as exceptions).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "softatm_callbacks_pending", Help: "Callbacks waiting to be delivered.",
		}),
	}
	register := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector
			}
			panic(err)
		}
		return c
	}
	m.sent = register(m.sent).(*prometheus.CounterVec)
	m.exceptions = register(m.exceptions).(prometheus.Counter)
	m.pending = register(m.pending).(prometheus.Gauge)
	return m
}

// NewCallbacks returns a callback worker; call Run. serverSecret is the
// switch's -secret, which opens the stored callback secrets. A zero field
// of cfg takes its default (DefaultCallbackConfig).
func NewCallbacks(cfg CallbackConfig, pool *pgxpool.Pool, l *ledger.Ledger, serverSecret []byte, log *slog.Logger,
	m *Metrics, now func() time.Time) *Callbacks {
	def := DefaultCallbackConfig()
	for _, f := range []struct{ v, d *time.Duration }{
		{&cfg.Lease, &def.Lease}, {&cfg.BackoffMin, &def.BackoffMin}, {&cfg.BackoffMax, &def.BackoffMax},
		{&cfg.Poll, &def.Poll}, {&cfg.Timeout, &def.Timeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if cfg.Owner == "" {
		cfg.Owner = def.Owner
	}
	if cfg.Batch <= 0 {
		cfg.Batch = def.Batch
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = def.MaxAttempts
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
	return &Callbacks{cfg: cfg, store: newPGStore(pool, l, nil), box: callbackBox(serverSecret), log: log, now: now,
		m: newCallbackMetrics(m.Registry),
		client: &http.Client{
			Timeout:       cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
}

// Run delivers callbacks until ctx ends.
func (c *Callbacks) Run(ctx context.Context) {
	drainLoop(ctx, nil, c.cfg.Poll, c.cfg.Batch, c.Drain, func(err error) { c.log.Warn("callback pass failed", "err", err) })
}

// Drain leases the due callbacks and delivers each once; it returns how
// many it leased.
func (c *Callbacks) Drain(ctx context.Context) (int, error) {
	now := c.now()
	cbs, err := c.store.LeaseCallbacks(ctx, c.cfg.Owner, now, now.Add(c.cfg.Lease), c.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("leasing callbacks: %w", err)
	}
	// At most one callback of a withdrawal is leased at a time, so these
	// may go in parallel without breaking any withdrawal's order.
	var wg sync.WaitGroup
	for _, cb := range cbs {
		wg.Go(func() {
			if err := c.deliver(ctx, cb); err != nil && ctx.Err() == nil {
				c.log.Warn("callback", "client", cb.client, "withdrawal", cb.event.Withdrawal.ID, "event", cb.event.ID, "err", err)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return len(cbs), err
	}
	if n, err := c.store.CallbacksPending(ctx); err == nil {
		c.m.pending.Set(float64(n))
	}
	return len(cbs), nil
}

func (c *Callbacks) deliver(ctx context.Context, cb callback) error {
	if cb.url == "" {
		return c.failed(ctx, cb, 0, errors.New("the client has no callback URL any more"), true)
	}
	secret, err := c.box.OpenText(cb.secret, cb.client)
	if err != nil || secret == "" {
		return c.failed(ctx, cb, 0, errors.New("the client's callback secret cannot be opened (was -secret changed?)"), true)
	}
	body, err := json.Marshal(cb.event)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(c.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cb.url, bytes.NewReader(body))
	if err != nil {
		return c.failed(ctx, cb, 0, err, true)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "softatm-callbacks/1")
	req.Header.Set(HeaderCallbackEventID, cb.event.ID.String())
	req.Header.Set(HeaderCallbackTimestamp, ts)
	req.Header.Set(HeaderCallbackSignature, SignCallback([]byte(secret), ts, body))
	resp, err := c.client.Do(req)
	if err != nil {
		c.m.sent.WithLabelValues("no_answer").Inc()
		return c.failed(ctx, cb, 0, err, false)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, callbackAnswerMax))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		c.m.sent.WithLabelValues(fmt.Sprintf("http_%dxx", resp.StatusCode/100)).Inc()
		return c.failed(ctx, cb, resp.StatusCode, fmt.Errorf("the receiver answered %d", resp.StatusCode), false)
	}
	c.m.sent.WithLabelValues("ok").Inc()
	return c.store.CallbackDelivered(ctx, cb.event.ID, resp.StatusCode, c.now())
}

// failed puts a callback back for another try, or gives it up (at once
// when giveUp, or after its last attempt).
func (c *Callbacks) failed(ctx context.Context, cb callback, status int, cause error, giveUp bool) error {
	attempts := cb.attempts + 1
	state := "pending"
	if giveUp || attempts >= c.cfg.MaxAttempts {
		state = "exception"
		c.m.exceptions.Inc()
		c.log.Error("callback moved to exceptions", "client", cb.client, "withdrawal", cb.event.Withdrawal.ID,
			"event", cb.event.ID, "attempts", attempts, "err", cause)
	}
	msg := cause.Error()
	if len(msg) > callbackErrorMaxLen {
		msg = msg[:callbackErrorMaxLen]
	}
	err := c.store.CallbackRetry(ctx, cb.event.ID, state, attempts, status, c.now().Add(c.backoff(attempts)), msg)
	return errors.Join(cause, err)
}

func (c *Callbacks) backoff(attempts int) time.Duration {
	d := c.cfg.BackoffMin << min(attempts-1, 20)
	if d > c.cfg.BackoffMax || d <= 0 {
		d = c.cfg.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}
