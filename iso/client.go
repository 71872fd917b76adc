package iso

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	"github.com/moov-io/iso8583/network"
)

// Defaults of the client's settings.
const (
	DefaultRequestTimeout = 10 * time.Second       // one request's deadline unless ctx is shorter
	DefaultEchoInterval   = 30 * time.Second       // idle time after which an 0800/301 echo is sent
	DefaultBackoffMin     = 100 * time.Millisecond // first wait before reconnecting
	DefaultBackoffMax     = 5 * time.Second        // longest wait between reconnect attempts
	DefaultConnectTimeout = 5 * time.Second        // TCP dial timeout
	DefaultSignOffTimeout = 2 * time.Second        // how long Close waits for the 0810 to a sign-off
)

// Errors returned by the client. ErrLinkDown and ErrClosed mean the request
// was not sent. ErrTimeout means it was sent (or may have been) and no usable
// reply came: the outcome at the bank is unknown, so a 0100 must be reversed.
var (
	ErrLinkDown = errors.New("iso: bank link down")
	ErrTimeout  = errors.New("iso: no reply before the deadline")
	ErrClosed   = errors.New("iso: client closed")
	// ErrLinkLost: the request was sent and then the connection dropped
	// before its reply. errors.Is(ErrLinkLost, ErrTimeout) is true, because
	// for the caller it is the same case: outcome unknown.
	ErrLinkLost error = linkLostError{}
	// ErrBadReply: a reply came but cannot be used (an approval without an
	// approval code, a bad response code). Treat the outcome as unknown.
	// A reply that does not match its request field by field is reported
	// apart, as a *MismatchError wrapping ErrReplyMismatch (reply.go): the
	// outcome is unknown too, and the caller also owes an exception record.
	ErrBadReply = errors.New("iso: unusable reply")
	// ErrInFlight: a request with the same reply MTI, STAN and terminal is
	// already waiting for its reply; its reply could not be told apart.
	ErrInFlight = errors.New("iso: a request with this STAN and terminal is already in flight")
)

type linkLostError struct{}

func (linkLostError) Error() string        { return "iso: link lost before the reply" }
func (linkLostError) Is(target error) bool { return target == ErrTimeout }

type options struct {
	acquirerID     string
	requestTimeout time.Duration
	echoInterval   time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	connectTimeout time.Duration
	signOffTimeout time.Duration
	stanStart      int
	logger         *slog.Logger
	observer       func(mti, responseCode string, rtt time.Duration, err error)
	lateReply      func(mti, stan, rrn string)
	now            func() time.Time
	tls            *tls.Config // nil: plain TCP
	standby        string      // "": none
	// breakerFailures and breakerCooldown: see WithBreaker.
	breakerFailures int
	breakerCooldown time.Duration
}

// Option configures a Client.
type Option func(*options)

// WithAcquirerID sets field 32 (default "970400").
func WithAcquirerID(id string) Option { return func(o *options) { o.acquirerID = id } }

// WithRequestTimeout sets one request's deadline (default 10s); a shorter ctx
// deadline wins.
func WithRequestTimeout(d time.Duration) Option { return func(o *options) { o.requestTimeout = d } }

// WithEchoInterval sets the idle time after which an 0800/301 echo test is
// sent (default 30s). A failed echo drops the connection and reconnects.
func WithEchoInterval(d time.Duration) Option { return func(o *options) { o.echoInterval = d } }

// WithReconnectBackoff bounds the jittered exponential wait between
// reconnect attempts (defaults 100ms and 5s).
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = min, max }
}

// WithConnectTimeout sets the TCP dial timeout (default 5s).
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connectTimeout = d } }

// WithSignOffTimeout sets how long Close waits for the sign-off reply
// (default 2s).
func WithSignOffTimeout(d time.Duration) Option { return func(o *options) { o.signOffTimeout = d } }

// WithSTANStart sets the first STAN NextSTAN returns (1..999999). By default
// it starts at a random value, so a restarted process is unlikely to repeat
// the STANs of its previous life within the bank's duplicate window.
func WithSTANStart(n int) Option { return func(o *options) { o.stanStart = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithObserver sets a hook called after every request, for metrics.
// responseCode is "" when err is not nil.
func WithObserver(f func(mti, responseCode string, rtt time.Duration, err error)) Option {
	return func(o *options) { o.observer = f }
}

// WithLateReply sets a hook called (in its own goroutine) for every reply
// that matches no waiting request: it came after its request's deadline, it
// is a duplicate, or it was never asked for.
func WithLateReply(f func(mti, stan, rrn string)) Option {
	return func(o *options) { o.lateReply = f }
}

// WithStandby sets the bank's standby address: after a failed connect the
// client tries the other address, so it alternates between the two until
// one signs on (default none).
func WithStandby(addr string) Option { return func(o *options) { o.standby = addr } }

// withClock is for tests.
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Client is one connection to the bank, kept signed on. It is safe for
// concurrent use; many requests may be in flight at once.
type Client struct {
	addrs []string // the bank's address, then its standby if any
	o     options
	log   *slog.Logger
	br    breaker

	stan atomic.Uint64
	up   atomic.Bool

	mu      sync.Mutex
	conn    *connection.Connection // current connection, nil while down
	pending map[string]chan *Message
	closed  bool

	closeOnce sync.Once
	closeCh   chan struct{}
	done      chan struct{}
}

// NewClient returns a client for the bank at addr and starts connecting in
// the background. It signs on (0800/001) after every (re)connect, reconnects
// forever with bounded backoff, and signs off (0800/002) on Close.
func NewClient(addr string, opts ...Option) *Client {
	o := options{
		acquirerID:     DefaultAcquirerID,
		requestTimeout: DefaultRequestTimeout,
		echoInterval:   DefaultEchoInterval,
		backoffMin:     DefaultBackoffMin,
		backoffMax:     DefaultBackoffMax,
		connectTimeout: DefaultConnectTimeout,
		signOffTimeout: DefaultSignOffTimeout,
		logger:         slog.Default(),
		now:            time.Now,

		breakerFailures: DefaultBreakerFailures,
		breakerCooldown: DefaultBreakerCooldown,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.backoffMin <= 0 {
		o.backoffMin = DefaultBackoffMin
	}
	if o.backoffMax < o.backoffMin {
		o.backoffMax = o.backoffMin
	}
	if o.stanStart < 1 || o.stanStart > 999999 {
		o.stanStart = 1 + rand.IntN(999999)
	}
	addrs := []string{addr}
	if o.standby != "" && o.standby != addr {
		addrs = append(addrs, o.standby)
	}
	c := &Client{
		addrs:   addrs,
		o:       o,
		br:      breaker{failuresMax: o.breakerFailures, cooldown: o.breakerCooldown},
		log:     o.logger.With("component", "iso.client", "addr", addr),
		pending: make(map[string]chan *Message),
		closeCh: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.stan.Store(uint64(o.stanStart - 1))
	go c.run()
	return c
}

// NextSTAN returns the next STAN: 6 digits, 000001..999999, then wraps.
func (c *Client) NextSTAN() string {
	n := c.stan.Add(1)
	return fmt.Sprintf("%06d", (n-1)%999999+1)
}

// Addr returns the bank's (primary) address.
func (c *Client) Addr() string { return c.addrs[0] }

// Up reports whether the client is connected and signed on.
func (c *Client) Up() bool { return c.up.Load() }

// Ready reports whether a request sent now would go out: the link is up
// and its circuit breaker is not open. A caller that can refuse cheaply
// (a create, before anything is recorded) asks this first.
func (c *Client) Ready() bool { return c.up.Load() && !c.br.open(c.o.now()) }

// CircuitOpen reports whether the circuit breaker refuses requests now.
func (c *Client) CircuitOpen() bool { return c.br.open(c.o.now()) }

// Authorize sends a 0100 and waits for its 0110. The deadline is the earlier
// of ctx's and the request timeout.
func (c *Client) Authorize(ctx context.Context, r AuthRequest) (AuthResponse, error) {
	m, err := r.Message(c.o.acquirerID)
	if err != nil {
		return AuthResponse{}, err
	}
	reply, err := c.request(ctx, m)
	if err != nil {
		return AuthResponse{STAN: r.STAN, RRN: r.RRN}, err
	}
	// CheckReply has made field 4 and 49 equal to the request's, so the
	// amount parses; it is still read from the reply, because it is what
	// the bank approved and what the switch must store.
	amount, err := ParseAmount(reply.Amount)
	if err != nil {
		return AuthResponse{STAN: r.STAN, RRN: r.RRN}, fmt.Errorf("%w: 0110 field 4: %v", ErrBadReply, err)
	}
	resp := AuthResponse{
		ResponseCode: reply.ResponseCode,
		ApprovalCode: strings.TrimRight(reply.ApprovalCode, " "),
		STAN:         reply.STAN,
		RRN:          reply.RRN,
		Amount:       amount,
		Currency:     reply.Currency,
	}
	if resp.ResponseCode == RCApproved && resp.ApprovalCode == "" {
		return resp, fmt.Errorf("%w: 0110 approved without an approval code", ErrBadReply)
	}
	return resp, nil
}

// Advise sends a 0220 (0221 when r.Repeat) and waits for its 0230.
func (c *Client) Advise(ctx context.Context, r AdviceRequest) (AdviceResponse, error) {
	return c.advice(ctx, MTIAdvice, r)
}

// Reverse sends a 0420 (0421 when r.Repeat) and waits for its 0430.
func (c *Client) Reverse(ctx context.Context, r AdviceRequest) (AdviceResponse, error) {
	return c.advice(ctx, MTIReversal, r)
}

func (c *Client) advice(ctx context.Context, base string, r AdviceRequest) (AdviceResponse, error) {
	m, err := r.Message(base, c.o.acquirerID)
	if err != nil {
		return AdviceResponse{}, err
	}
	reply, err := c.request(ctx, m)
	if err != nil {
		return AdviceResponse{}, err
	}
	return AdviceResponse{ResponseCode: reply.ResponseCode, SettlementDate: reply.SettlementDate}, nil
}

// request sends a financial message on the signed-on connection and reports
// it to the observer.
func (c *Client) request(ctx context.Context, m *Message) (*Message, error) {
	start := time.Now()
	// The breaker guards the requests a caller waits for (0100, 0200,
	// 0800). Advices and reversals are store-and-forward: the outbox
	// retries them and sends none while the circuit is open (Ready), so
	// they neither wait for it nor count for it: a bank that answers its
	// 0100s but leaves 0220s unanswered still takes withdrawals.
	online := !storeAndForward(m.MTI)
	var probe bool
	var err error
	if online {
		probe, err = c.br.allow(c.o.now())
	}
	var reply *Message
	if err == nil {
		reply, err = c.requestUp(ctx, m)
		if online {
			c.br.record(c.o.now(), probe, err)
		}
	}
	if err == nil && (len(reply.ResponseCode) != 2 || !isDigits(reply.ResponseCode)) {
		err = fmt.Errorf("%w: %s with response code %q", ErrBadReply, reply.MTI, reply.ResponseCode)
		reply = nil
	}
	rc := ""
	if reply != nil {
		rc = reply.ResponseCode
	}
	if c.o.observer != nil {
		c.o.observer(m.MTI, rc, time.Since(start), err)
	}
	if err != nil {
		c.log.WarnContext(ctx, "bank request failed", "mti", m.MTI, "stan", m.STAN, "rrn", m.RRN,
			"account", Mask(m.Account), "err", err)
		return nil, err
	}
	c.log.DebugContext(ctx, "bank request", "mti", m.MTI, "stan", m.STAN, "rrn", m.RRN,
		"account", Mask(m.Account), "response_code", rc, "rtt", time.Since(start))
	return reply, nil
}

func (c *Client) requestUp(ctx context.Context, m *Message) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed, conn := c.closed, c.conn
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if conn == nil || !c.up.Load() {
		return nil, ErrLinkDown
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.requestTimeout)
	defer cancel()
	return c.exchange(ctx, conn, m, c.closeCh)
}

func matchKey(mti, stan, terminal string) string {
	return mti + "|" + stan + "|" + strings.TrimRight(terminal, " ")
}

// exchange writes m on conn and waits for the reply with the matching MTI,
// STAN and terminal until ctx ends, conn drops or abort closes.
func (c *Client) exchange(ctx context.Context, conn *connection.Connection, m *Message, abort <-chan struct{}) (*Message, error) {
	payload, err := Pack(m)
	if err != nil {
		return nil, err
	}
	var frame bytes.Buffer
	if err := WriteFrame(&frame, payload); err != nil {
		return nil, err
	}
	select {
	case <-conn.Done():
		return nil, ErrLinkDown
	default:
	}

	key := matchKey(ResponseMTI(m.MTI), m.STAN, m.TerminalID)
	ch := make(chan *Message, 1)
	c.mu.Lock()
	if _, busy := c.pending[key]; busy {
		c.mu.Unlock()
		return nil, ErrInFlight
	}
	c.pending[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending[key] == ch {
			delete(c.pending, key)
		}
		c.mu.Unlock()
	}()

	// conn.Write hands the frame to the connection's single writer; it can
	// block behind a stuck socket, so it runs aside and the deadline still
	// holds.
	written := make(chan error, 1)
	go func() {
		_, err := conn.Write(frame.Bytes())
		written <- err
	}()
	select {
	case err := <-written:
		if errors.Is(err, connection.ErrConnectionClosed) {
			return nil, ErrLinkDown
		}
		if err != nil {
			// Part of the frame may be on the wire.
			return nil, fmt.Errorf("%w: writing: %v", ErrLinkLost, err)
		}
	case <-ctx.Done():
		return nil, c.deadlineErr(ctx)
	case <-abort:
		return nil, ErrClosed
	}

	var reply *Message
	select {
	case reply = <-ch:
	case <-ctx.Done():
		return nil, c.deadlineErr(ctx)
	case <-conn.Done():
		// The reply may have been delivered just before the drop.
		select {
		case reply = <-ch:
		default:
			return nil, ErrLinkLost
		}
	case <-abort:
		return nil, ErrClosed
	}
	// Matching found the reply by MTI, STAN and terminal; only the full
	// comparison makes it the answer to m. A reply that fails it is not an
	// answer: the request's outcome is unknown and the caller is told so
	// (a *MismatchError) rather than shown anything the reply says.
	if err := CheckReply(m, reply); err != nil {
		return nil, err
	}
	return reply, nil
}

func (c *Client) deadlineErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
}

// dispatch hands one inbound message to its waiting request. It runs on the
// connection's read goroutine and never blocks on a caller.
func (c *Client) dispatch(conn *connection.Connection, m *Message) {
	if m.MTI == MTINetworkRequest {
		go c.answerNetwork(conn, m)
		return
	}
	key := matchKey(m.MTI, m.STAN, m.TerminalID)
	c.mu.Lock()
	ch, ok := c.pending[key]
	if ok {
		delete(c.pending, key)
	}
	c.mu.Unlock()
	if ok {
		ch <- m // buffered, and removed from the map: at most one send
		return
	}
	c.log.Warn("unmatched bank reply", "mti", m.MTI, "stan", m.STAN, "rrn", m.RRN,
		"terminal", strings.TrimRight(m.TerminalID, " "), "response_code", m.ResponseCode)
	if c.o.lateReply != nil {
		go c.o.lateReply(m.MTI, m.STAN, m.RRN)
	}
}

// answerNetwork replies 0810/00 to an 0800 the bank sends us (its own echo
// test or sign-on).
func (c *Client) answerNetwork(conn *connection.Connection, m *Message) {
	reply := &Message{MTI: MTINetworkResponse, TransmissionDateTime: m.TransmissionDateTime,
		STAN: m.STAN, AcquirerID: m.AcquirerID, NetworkCode: m.NetworkCode, ResponseCode: RCApproved}
	payload, err := Pack(reply)
	if err == nil {
		var frame bytes.Buffer
		if err = WriteFrame(&frame, payload); err == nil {
			_, err = conn.Write(frame.Bytes())
		}
	}
	if err != nil {
		c.log.Warn("answering bank 0800", "stan", m.STAN, "err", err)
	}
}

// run keeps the link up until Close.
func (c *Client) run() {
	defer close(c.done)
	backoff := c.o.backoffMin
	at := 0 // index in addrs of the address to dial next
	for {
		addr := c.addrs[at]
		conn, err := c.connect(addr)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			c.log.Warn("bank link: connect failed", "dialled", addr, "err", err, "retry_in", backoff)
			// Try the other address next: a primary that is down leaves
			// the standby one backoff away.
			at = (at + 1) % len(c.addrs)
		} else {
			c.log.Info("bank link up", "dialled", addr)
			connectedAt := time.Now()
			select {
			case <-conn.Done():
				c.setDown(conn)
				c.log.Warn("bank link lost")
				// A link that stayed up a while starts its backoff afresh;
				// one that drops right after sign-on keeps growing it, so a
				// peer that accepts and hangs up is not hammered.
				if time.Since(connectedAt) > c.o.backoffMax {
					backoff = c.o.backoffMin
				}
			case <-c.closeCh:
				c.shutdown(conn)
				return
			}
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(wait):
		case <-c.closeCh:
			return
		}
		backoff = min(backoff*2, c.o.backoffMax)
	}
}

// connect dials addr and signs on.
func (c *Client) connect(addr string) (*connection.Connection, error) {
	reader := &messageReader{c: c}
	copts := []connection.Option{
		connection.SetMessageReader(reader),
		connection.ConnectTimeout(c.o.connectTimeout),
		connection.SendTimeout(c.o.requestTimeout),
		connection.IdleTime(c.o.echoInterval),
		connection.PingHandler(func(conn *connection.Connection) { go c.echo(conn) }),
		connection.ErrorHandler(func(err error) { c.log.Debug("bank link", "err", err) }),
	}
	if c.o.tls != nil {
		// The connect timeout bounds the TCP dial and the TLS handshake
		// together (tls.DialWithDialer).
		copts = append(copts, connTLS(c.o.tls))
	}
	conn, err := connection.New(addr, Spec, readLength, writeLength, copts...)
	if err != nil {
		return nil, fmt.Errorf("creating connection: %w", err)
	}
	reader.conn = conn
	if err := conn.Connect(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		conn.Close()
		return nil, ErrClosed
	}
	c.conn = conn
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.o.requestTimeout)
	defer cancel()
	reply, err := c.exchange(ctx, conn, networkMessage(NetworkSignOn, c.NextSTAN(), c.o.now(), c.o.acquirerID), c.closeCh)
	if err == nil && reply.ResponseCode != RCApproved {
		err = fmt.Errorf("sign-on refused with %q", reply.ResponseCode)
	}
	if err != nil {
		c.setDown(conn)
		conn.Close()
		return nil, fmt.Errorf("sign-on: %w", err)
	}
	c.br.reset()
	c.up.Store(true)
	// The connection may have dropped between the reply and now; run sees
	// conn.Done() and marks it down again.
	return conn, nil
}

func (c *Client) setDown(conn *connection.Connection) {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
		c.up.Store(false)
	}
	c.mu.Unlock()
}

// echo sends an 0800/301 on an idle connection; no reply drops it, and run
// reconnects.
func (c *Client) echo(conn *connection.Connection) {
	c.mu.Lock()
	current := c.conn == conn && !c.closed
	c.mu.Unlock()
	if !current {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.o.requestTimeout)
	defer cancel()
	reply, err := c.exchange(ctx, conn, networkMessage(NetworkEcho, c.NextSTAN(), c.o.now(), c.o.acquirerID), c.closeCh)
	if errors.Is(err, ErrClosed) {
		return
	}
	if err == nil && reply.ResponseCode != RCApproved {
		err = fmt.Errorf("echo answered %q", reply.ResponseCode)
	}
	if err != nil {
		c.log.Warn("bank link: echo failed, reconnecting", "err", err)
		conn.TriggerFailure(fmt.Errorf("echo: %w", err))
	}
}

// shutdown signs off and closes the connection.
func (c *Client) shutdown(conn *connection.Connection) {
	c.up.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), c.o.signOffTimeout)
	defer cancel()
	if _, err := c.exchange(ctx, conn, networkMessage(NetworkSignOff, c.NextSTAN(), c.o.now(), c.o.acquirerID), nil); err != nil {
		c.log.Warn("bank link: sign-off", "err", err)
	}
	c.setDown(conn)
	conn.Close()
}

// Close signs off, closes the connection and stops reconnecting. Requests in
// flight return ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.closeCh)
	})
	<-c.done
	return nil
}

// messageReader plugs our framing and matching into the connection's read
// loop: it reads one frame, hands the message to the client and returns nil,
// which the connection takes as "nothing for me".
type messageReader struct {
	c    *Client
	conn *connection.Connection
}

func (r *messageReader) ReadMessage(rd io.Reader) (*iso8583.Message, error) {
	m, raw, err := ReadMessage(rd)
	if err != nil {
		if raw != nil {
			// A well-framed but malformed message: the stream is still in
			// step, so log (never the bytes: they hold the account) and
			// read on.
			r.c.log.Warn("bank link: malformed message", "bytes", len(raw), "err", err)
			return nil, nil
		}
		return nil, err
	}
	r.c.dispatch(r.conn, m)
	return nil, nil
}

func readLength(r io.Reader) (int, error) {
	h := network.NewBinary2BytesHeader()
	if _, err := h.ReadFrom(r); err != nil {
		return 0, err
	}
	return h.Length(), nil
}

func writeLength(w io.Writer, length int) (int, error) {
	h := network.NewBinary2BytesHeader()
	if err := h.SetLength(length); err != nil {
		return 0, err
	}
	return h.WriteTo(w)
}

// storeAndForward says whether mti is an advice or a reversal (a first
// send or a repeat), which the outbox delivers and retries.
func storeAndForward(mti string) bool {
	switch mti {
	case MTIAdvice, MTIAdviceRepeat, MTIReversal, MTIReversalRepeat:
		return true
	}
	return false
}
