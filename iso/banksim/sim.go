// Package banksim is the issuer simulator: a real ISO 8583 peer on softatm's
// wire profile (package iso) that keeps accounts with balances and daily
// limits, places holds on 0100, captures them on 0220/0221 and releases them
// on 0420/0421, both idempotent, detects duplicate transmissions, and injects
// faults (delay, drop, disconnect, duplicate reply, late reply, 91, 96, a
// reply that lies about one field, a refused advice or reversal) per
// account, per MTI or for every request, so tests, demos and benchmarks can
// drive the switch through every path.
//
// The server is a plain net.Listener with the same framing helpers the
// client uses (iso.ReadMessage, iso.WriteFrame) rather than
// iso8583-connection's server package: fault injection needs the raw
// connection (hang up on receipt, write one reply twice, write after a
// delay), and a second, independent user of the framing code keeps the
// client honest.
//
// Decisions DESIGN.md leaves open:
//   - DailyLimit 0 means no limit. "Withdrawn today" counts captures on the
//     current calendar day in Vietnam time (iso.LocalZone).
//   - An advice names its hold by approval code (field 38), or by RRN when
//     38 is absent; a mismatching RRN or amount answers 12 / 13. A reversal
//     names its hold by approval code, RRN, or the original STAN in field 90
//     (with the terminal); a reversal of a hold never made answers 00.
//   - Faults on a single account or on every request ("" account) apply to
//     financial messages only, so a global fault does not also stop sign-on;
//     an MTI fault (SetMTIFault("0800", ...)) reaches network messages too.
//     Precedence: account, then MTI, then global.
//   - "drop", "delay", "late" and "duplicate" process the message and then
//     misbehave with the reply, like a bank whose answer is lost: the hold
//     exists, and only a reversal releases it. "disconnect", "unavailable"
//     and "malfunction" change nothing.
//   - The "reply_*" faults (reply_amount, reply_rrn, reply_account,
//     reply_currency, reply_proc) answer with one field other than the
//     request's (see lie.go for the values). Set on an account or for every
//     request they lie only in the 0110, so the switch's reversal of the
//     lied-about 0100 is answered honestly; set on an MTI they lie in the
//     reply to that MTI (0230, 0430, 0810 too). The books stay those of a
//     real bank: the hold of a lying 0110 is placed on the request's
//     account, under the request's RRN, STAN and terminal, for the amount
//     the reply states. Only reply_amount makes that differ from the
//     request: the bank holds the amount it said. On an advice or reversal
//     the books follow the request and only the reply lies.
//   - "advice_refuse" answers a 0220/0221 and "reversal_refuse" a 0420/0421
//     with Fault.ResponseCode (05 when empty) and changes nothing: the hold
//     stays held. Other MTIs on the same account are served normally.
//   - Close stops serving but keeps the books; Listen may be called again,
//     which is how tests restart the bank on the same port.
//
// This package imports package iso and no other softatm package: it is the
// issuer on the other end of the wire, and shares only the wire format with
// the switch.
package banksim

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/softatm/softatm/iso"
)

// Fault kinds.
const (
	FaultNone        = ""
	FaultDelay       = "delay"       // reply after DelayMs
	FaultDrop        = "drop"        // never reply
	FaultDisconnect  = "disconnect"  // close the connection on receipt
	FaultDuplicate   = "duplicate"   // reply twice
	FaultLate        = "late"        // reply after DelayMs, meant to pass the switch's deadline
	FaultUnavailable = "unavailable" // reply 91
	FaultMalfunction = "malfunction" // reply 96

	FaultReplyAmount   = "reply_amount"   // the reply states another amount (field 4); the hold is that amount
	FaultReplyRRN      = "reply_rrn"      // the reply carries another RRN (field 37)
	FaultReplyAccount  = "reply_account"  // the reply names another account (field 102, or 2)
	FaultReplyCurrency = "reply_currency" // the reply carries currency 840 (field 49)
	FaultReplyProc     = "reply_proc"     // the reply carries another processing code (field 3)

	FaultAdviceRefuse   = "advice_refuse"   // answer a 0220/0221 with Fault.ResponseCode, capture nothing
	FaultReversalRefuse = "reversal_refuse" // answer a 0420/0421 with Fault.ResponseCode, release nothing
)

// Hold states.
const (
	HoldHeld     = "held"
	HoldCaptured = "captured"
	HoldReleased = "released"
)

// Limits of the simulator's memory.
const (
	maxSeenKeys       = 100_000 // duplicate-detection window, in 0100s remembered
	approvalCodeChars = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
)

// Account is a bank account the simulator holds.
type Account struct {
	Number, Bank, Holder, Phone string
	Balance, DailyLimit         int64 // minor units (VND); DailyLimit 0 = none
	Blocked                     bool
}

// Fault is an injected misbehaviour.
type Fault struct {
	Kind    string
	DelayMs int
	// ResponseCode is what advice_refuse and reversal_refuse answer
	// (default 05, do not honour). Other kinds ignore it.
	ResponseCode string
}

// Hold is money reserved by an approved 0100.
type Hold struct {
	ApprovalCode, Account, RRN, STAN string
	Amount                           int64
	State                            string // "held", "captured", "released"
	CreatedAt                        time.Time
	ResolvedAt                       time.Time
	terminal                         string
	acceptor                         string // field 42 of the 0100, spaces trimmed
}

// AccountState is an account with what is held on it and what was captured
// from it today.
type AccountState struct {
	Account
	Held           int64
	WithdrawnToday int64
}

type account struct {
	Account
	held          int64
	withdrawn     int64
	withdrawnDate string // YYYY-MM-DD in Vietnam time that withdrawn counts
}

// Option configures a Sim.
type Option func(*Sim)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Sim) { s.now = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Sim) { s.log = l } }

// WithTLS makes Listen serve TLS with cfg (nil: plain TCP, the default). To
// play a bank that asks for the switch's client certificate, set
// cfg.ClientAuth to tls.RequireAndVerifyClientCert and cfg.ClientCAs to the
// CAs it trusts (see TLSConfig).
func WithTLS(cfg *tls.Config) Option { return func(s *Sim) { s.tls = cfg } }

// handshakeTimeout bounds a TLS handshake: a peer that connects and says
// nothing is hung up on.
const handshakeTimeout = 10 * time.Second

// Sim is the issuer simulator. It is safe for concurrent use.
type Sim struct {
	now func() time.Time
	log *slog.Logger
	tls *tls.Config // nil: plain TCP
	// strict pairs advices by STAN and terminal (WithStrictPairing).
	strict bool

	bank bankConfig // the bank it plays, its cut-off (bank.go)

	mu          sync.Mutex
	accounts    map[string]*account
	holds       map[string]*Hold // by approval code
	holdOrder   []*Hold
	byRRN       map[string]*Hold
	byOrigSTAN  map[string]*Hold // STAN|terminal of the 0100
	credits     []*Credit        // deposits credited by a 0200, in order (deposit.go)
	seen        map[string]struct{}
	seenOrder   []string
	acctFaults  map[string]Fault // "" = every financial request
	mtiFaults   map[string]Fault
	received    map[string]int // by MTI; see Received
	listeners   map[net.Listener]struct{}
	conns       map[net.Conn]struct{}
	serveGroup  sync.WaitGroup
	replyTimers map[*time.Timer]struct{}
}

// New returns a simulator holding accounts.
func New(accounts []Account, opts ...Option) *Sim {
	s := &Sim{
		now:         time.Now,
		log:         slog.Default(),
		accounts:    make(map[string]*account, len(accounts)),
		holds:       make(map[string]*Hold),
		byRRN:       make(map[string]*Hold),
		byOrigSTAN:  make(map[string]*Hold),
		seen:        make(map[string]struct{}),
		acctFaults:  make(map[string]Fault),
		mtiFaults:   make(map[string]Fault),
		received:    make(map[string]int),
		listeners:   make(map[net.Listener]struct{}),
		conns:       make(map[net.Conn]struct{}),
		replyTimers: make(map[*time.Timer]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("component", "banksim")
	if s.bank.code != "" {
		// The bank's code on every log line, so that a test running many
		// banks in one process can tell which one carried a message.
		s.log = s.log.With("bank", s.bank.code)
	}
	for _, a := range accounts {
		s.accounts[a.Number] = &account{Account: a}
	}
	return s
}

// Listen starts serving on addr ("127.0.0.1:0" picks a free port) in the
// background and returns the address it listens on.
func (s *Sim) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if s.tls != nil {
		cfg := s.tls.Clone()
		if cfg.MinVersion < iso.TLSMinVersion {
			cfg.MinVersion = iso.TLSMinVersion
		}
		ln = tls.NewListener(ln, cfg)
	}
	s.mu.Lock()
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.serveGroup.Add(1)
	go s.accept(ln)
	return ln.Addr(), nil
}

// Close stops every listener and connection and cancels replies still
// waiting on a delay. The accounts and holds stay: Listen again to restart.
func (s *Sim) Close() error {
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	for t := range s.replyTimers {
		t.Stop()
	}
	s.listeners = make(map[net.Listener]struct{})
	s.replyTimers = make(map[*time.Timer]struct{})
	s.mu.Unlock()
	s.serveGroup.Wait()
	return nil
}

func (s *Sim) accept(ln net.Listener) {
	defer s.serveGroup.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept", "err", err)
			}
			return
		}
		s.mu.Lock()
		if _, open := s.listeners[ln]; !open {
			// Close ran between Accept and here: it has already closed
			// the connections it knew of, so this one must go too.
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.serveGroup.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// conn serialises frame writes on one connection.
type conn struct {
	mu sync.Mutex
	c  net.Conn
}

func (c *conn) send(m *iso.Message) error {
	b, err := iso.Pack(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return iso.WriteFrame(c.c, b)
}

func (s *Sim) serve(nc net.Conn) {
	defer s.serveGroup.Done()
	defer func() {
		nc.Close()
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
	if tc, ok := nc.(*tls.Conn); ok && !s.handshake(tc) {
		return
	}
	c := &conn{c: nc}
	r := bufio.NewReader(nc)
	for {
		m, raw, err := iso.ReadMessage(r)
		if err != nil {
			if raw != nil {
				// Framed but not a message of our profile: nothing in it
				// can be trusted to address a reply to.
				s.log.Warn("malformed message", "bytes", len(raw), "err", err)
				s.mu.Lock()
				s.received["malformed"]++
				s.mu.Unlock()
				continue
			}
			return
		}
		if !s.handle(c, m) {
			return
		}
	}
}

// handle answers one message. It returns false when the connection must be
// closed.
func (s *Sim) handle(c *conn, m *iso.Message) bool {
	s.mu.Lock()
	s.received[m.MTI]++
	fault, byMTI := s.faultFor(m)
	s.mu.Unlock()

	var reply *iso.Message
	switch {
	case fault.Kind == FaultDisconnect:
		s.log.Info("fault: disconnect", "mti", m.MTI, "stan", m.STAN)
		return false
	case fault.Kind == FaultUnavailable:
		reply = replyTo(m, iso.RCIssuerUnavailable)
	case fault.Kind == FaultMalfunction:
		reply = replyTo(m, iso.RCSystemError)
	case refuses(fault, m.MTI):
		rc := fault.ResponseCode
		if rc == "" {
			rc = iso.RCDoNotHonour
		}
		s.log.Info("fault: refused", "mti", m.MTI, "stan", m.STAN, "rc", rc)
		reply = replyTo(m, rc)
	default:
		reply = s.process(m, lies(fault, m.MTI, byMTI))
	}
	if reply == nil {
		return true
	}
	if lie := lies(fault, m.MTI, byMTI); lie != "" {
		s.log.Info("fault: reply lies", "mti", m.MTI, "stan", m.STAN, "lie", lie)
		tell(lie, reply)
	}
	if reply.MTI != iso.MTINetworkResponse {
		reply.SettlementDate = s.settlementDate(m.Account) // the bank's cut-off decides (bank.go)
	}

	delay := time.Duration(fault.DelayMs) * time.Millisecond
	switch fault.Kind {
	case FaultDrop:
		s.log.Info("fault: drop reply", "mti", m.MTI, "stan", m.STAN, "rc", reply.ResponseCode)
		return true
	case FaultDelay, FaultLate:
		s.mu.Lock()
		var t *time.Timer
		t = time.AfterFunc(delay, func() {
			s.mu.Lock()
			delete(s.replyTimers, t)
			s.mu.Unlock()
			s.write(c, reply)
		})
		s.replyTimers[t] = struct{}{}
		s.mu.Unlock()
		return true
	case FaultDuplicate:
		s.write(c, reply)
	}
	s.write(c, reply)
	return true
}

// handshake runs a TLS connection's handshake before anything is read, so
// that a refused peer (no client certificate, one from an unknown CA) is
// logged and counted (Received("tls_refused")) rather than seen as a
// malformed frame.
func (s *Sim) handshake(tc *tls.Conn) bool {
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout)) // the wall clock: s.now may be a test's
	err := tc.Handshake()
	_ = tc.SetDeadline(time.Time{})
	key := ReceivedTLSOK
	if err != nil {
		key = ReceivedTLSRefused
		s.log.Warn("tls handshake failed", "remote", tc.RemoteAddr().String(), "err", err)
	}
	s.mu.Lock()
	s.received[key]++
	s.mu.Unlock()
	return err == nil
}

// Keys of Received that count TLS handshakes, not messages.
const (
	ReceivedTLSOK      = "tls_ok"
	ReceivedTLSRefused = "tls_refused"
)

func (s *Sim) write(c *conn, m *iso.Message) {
	if err := c.send(m); err != nil {
		s.log.Warn("writing reply", "mti", m.MTI, "stan", m.STAN, "err", err)
	}
}

// faultFor picks the fault for m and says whether it was chosen by m's MTI.
// Callers hold s.mu.
func (s *Sim) faultFor(m *iso.Message) (f Fault, byMTI bool) {
	financial := !strings.HasPrefix(m.MTI, "08")
	if financial {
		if f, ok := s.acctFaults[m.AccountID()]; ok && m.AccountID() != "" {
			return f, false
		}
	}
	if f, ok := s.mtiFaults[m.MTI]; ok {
		return f, true
	}
	if financial {
		if f, ok := s.acctFaults[""]; ok {
			return f, false
		}
	}
	return Fault{}, false
}

// SetFault injects f on requests for account, or on every financial request
// when account is "". A Fault with Kind "" removes it.
func (s *Sim) SetFault(account string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Kind == FaultNone {
		delete(s.acctFaults, account)
		return
	}
	s.acctFaults[account] = f
}

// SetMTIFault injects f on every message with this MTI (for example drop
// every "0220" to play a bank that does not answer advices). A Fault with
// Kind "" removes it.
func (s *Sim) SetMTIFault(mti string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Kind == FaultNone {
		delete(s.mtiFaults, mti)
		return
	}
	s.mtiFaults[mti] = f
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acctFaults = make(map[string]Fault)
	s.mtiFaults = make(map[string]Fault)
}

// Received returns how many messages with this MTI arrived ("malformed"
// counts frames that did not unpack; ReceivedTLSOK and ReceivedTLSRefused
// count TLS handshakes).
func (s *Sim) Received(mti string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received[mti]
}

// Account returns the state of one account.
func (s *Sim) Account(number string) (AccountState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[number]
	if !ok {
		return AccountState{}, false
	}
	return s.stateOf(a), true
}

// Accounts returns every account, ordered by number.
func (s *Sim) Accounts() []AccountState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AccountState, 0, len(s.accounts))
	for _, a := range s.accounts {
		out = append(out, s.stateOf(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

func (s *Sim) stateOf(a *account) AccountState {
	s.rollDay(a)
	return AccountState{Account: a.Account, Held: a.held, WithdrawnToday: a.withdrawn}
}

// rollDay resets the day's withdrawals when the calendar day has changed.
func (s *Sim) rollDay(a *account) {
	today := s.now().In(iso.LocalZone).Format(time.DateOnly)
	if a.withdrawnDate != today {
		a.withdrawnDate, a.withdrawn = today, 0
	}
}

// Holds returns every hold, oldest first.
func (s *Sim) Holds() []Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Hold, len(s.holdOrder))
	for i, h := range s.holdOrder {
		out[i] = *h
	}
	return out
}

func (s *Sim) newApprovalCode() string {
	for {
		b := make([]byte, 6)
		for i := range b {
			b[i] = approvalCodeChars[rand.IntN(len(approvalCodeChars))]
		}
		if _, taken := s.holds[string(b)]; !taken {
			return string(b)
		}
	}
}

func (s *Sim) remember(key string) {
	s.seen[key] = struct{}{}
	s.seenOrder = append(s.seenOrder, key)
	if len(s.seenOrder) > maxSeenKeys {
		delete(s.seen, s.seenOrder[0])
		s.seenOrder = s.seenOrder[1:]
	}
}
