package auth

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Failure kinds and reasons: the labels of softatm_auth_failures_total and
// the "reason" of the log lines. Both sets are closed, so the metric's
// label values are bounded.
const (
	kindLogin  = "login"
	kindClient = "client"

	reasonBadPassword = "bad_password"   // a known, enabled user with a wrong password
	reasonUnknownUser = "unknown_user"   // no such user name
	reasonDisabled    = "disabled"       // the user or bank client is disabled
	reasonDelayed     = "delayed"        // refused unchecked: the (user, address) is waiting out its delay
	reasonBusy        = "busy"           // refused unchecked: no bcrypt slot within the wait bound
	reasonBadSecret   = "bad_secret"     // a known bank client with a wrong secret
	reasonUnknownCli  = "unknown_client" // no such bank client id
	reasonRateLimited = "rate_limited"   // refused: the address or client id is over its failure budget
	reasonMalformed   = "malformed"      // no usable HTTP Basic credentials
)

var (
	loginReasons  = []string{reasonBadPassword, reasonUnknownUser, reasonDisabled, reasonDelayed, reasonBusy}
	clientReasons = []string{reasonBadSecret, reasonUnknownCli, reasonDisabled, reasonRateLimited, reasonMalformed, reasonBusy}
)

func newFailureCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "softatm_auth_failures_total",
		Help: "Refused authentication attempts, by kind (login: staff password; client: bank API credentials) and reason.",
	}, []string{"kind", "reason"})
	// Every series exists from the start, at 0, so that an alert on its
	// rate sees the first failure.
	for _, r := range loginReasons {
		c.WithLabelValues(kindLogin, r)
	}
	for _, r := range clientReasons {
		c.WithLabelValues(kindClient, r)
	}
	return c
}

// failureWindows counts failures per key (a source address or a client id)
// in fixed windows: a key's window opens at its first failure and lasts
// window; its count starts again after that. It lives in memory, so each
// switch instance counts on its own (see the package comment).
type failureWindows struct {
	window  time.Duration
	keysMax int

	mu   sync.Mutex
	keys map[string]*failureWindow
}

type failureWindow struct {
	start time.Time
	n     int
}

func newFailureWindows(window time.Duration, keysMax int) *failureWindows {
	return &failureWindows{window: window, keysMax: keysMax, keys: make(map[string]*failureWindow)}
}

// count is key's failures in its current window.
func (f *failureWindows) count(key string, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.keys[key]
	if w == nil || !now.Before(w.start.Add(f.window)) {
		return 0
	}
	return w.n
}

// add counts one failure for key and returns its count in the window. When
// keysMax keys are live, a new key is not tracked (its count stays 1): the
// map cannot be grown without bound by an attacker with many addresses,
// and evicting live keys would reset the attacker's own counts.
func (f *failureWindows) add(key string, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.keys[key]
	if w != nil && !now.Before(w.start.Add(f.window)) {
		w = nil
	}
	if w == nil {
		if len(f.keys) >= f.keysMax {
			for k, v := range f.keys {
				if !now.Before(v.start.Add(f.window)) {
					delete(f.keys, k)
				}
			}
			if len(f.keys) >= f.keysMax {
				return 1
			}
		}
		w = &failureWindow{start: now}
		f.keys[key] = w
	}
	w.n++
	return w.n
}

// bcryptSlots bounds bcrypt work: at most one comparison at a time per
// source address (a flood from one address queues behind itself) and at
// most total at once in the process (a flood from many addresses cannot
// take every core). A caller waits at most waitMax for its slots.
type bcryptSlots struct {
	global  chan struct{}
	waitMax time.Duration

	mu  sync.Mutex
	per map[string]*sourceSlot
}

type sourceSlot struct {
	ch   chan struct{}
	refs int // callers holding or waiting for ch; the entry goes at 0
}

func newBcryptSlots(total int, waitMax time.Duration) *bcryptSlots {
	return &bcryptSlots{global: make(chan struct{}, max(total, 1)), waitMax: waitMax, per: make(map[string]*sourceSlot)}
}

// acquire takes source's slot, then a global one (always in that order, so
// no two callers wait for each other's). It fails when ctx ends or waitMax
// passes first.
func (b *bcryptSlots) acquire(ctx context.Context, source string) (release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, b.waitMax)
	defer cancel()
	b.mu.Lock()
	p := b.per[source]
	if p == nil {
		p = &sourceSlot{ch: make(chan struct{}, 1)}
		b.per[source] = p
	}
	p.refs++
	b.mu.Unlock()
	drop := func() {
		b.mu.Lock()
		p.refs--
		if p.refs == 0 {
			delete(b.per, source)
		}
		b.mu.Unlock()
	}
	select {
	case p.ch <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
	select {
	case b.global <- struct{}{}:
	case <-ctx.Done():
		<-p.ch
		drop()
		return nil, ctx.Err()
	}
	return func() {
		<-b.global
		<-p.ch
		drop()
	}, nil
}

// sourceMaxLen bounds a source address given by a caller of Login.
const sourceMaxLen = 64

// SourceAddr is the address the limits and the logs key a request by: the
// IP of the TCP peer (r.RemoteAddr). Only when that peer is a trusted proxy
// (WithTrustedProxies) is X-Forwarded-For read, from the right, skipping
// the trusted proxies, so that the first address no trusted proxy wrote is
// the source; a client cannot pick its own key by sending the header. An
// IPv6 source is keyed by its /64, the block one host is usually given, so
// that one host cannot spread its guesses over 2^64 addresses.
func (s *Service) SourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if len(host) > sourceMaxLen {
			host = host[:sourceMaxLen]
		}
		return host
	}
	ip = ip.Unmap().WithZone("")
	if s.trusted(ip) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0 && i >= len(hops)-forwardedHopsMax; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a malformed hop: trust nothing further left
			}
			ip = hop.Unmap().WithZone("")
			if !s.trusted(ip) {
				break
			}
		}
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// forwardedHopsMax bounds the X-Forwarded-For entries read.
const forwardedHopsMax = 8

func (s *Service) trusted(ip netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
