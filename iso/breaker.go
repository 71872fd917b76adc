package iso

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Circuit breaker defaults. A bank that stops answering while its TCP
// connection stays up (black-holed, or too slow) would otherwise make every
// caller wait the whole request timeout; after DefaultBreakerFailures
// requests in a row without a reply the circuit opens, and for
// DefaultBreakerCooldown every request is refused at once, unsent. Then one
// request is let through as a probe: its reply closes the circuit, its
// time-out opens it again.
const (
	DefaultBreakerFailures = 3               // requests in a row without a reply that open the circuit
	DefaultBreakerCooldown = 5 * time.Second // how long an open circuit refuses before it lets one probe through
)

// ErrCircuitOpen: the request was not sent, because the bank's recent
// requests went unanswered (see DefaultBreakerFailures). It is a case of
// ErrLinkDown: errors.Is(ErrCircuitOpen, ErrLinkDown) is true, so callers
// that treat a down link as "not sent" treat it the same.
var ErrCircuitOpen error = circuitOpenError{}

type circuitOpenError struct{}

func (circuitOpenError) Error() string {
	return "iso: circuit open: the bank left recent requests unanswered"
}
func (circuitOpenError) Is(target error) bool { return target == ErrLinkDown }

// WithBreaker sets the circuit breaker: failures requests in a row without
// a reply open it for cooldown (defaults 3 and 5s). failures 0 disables it.
func WithBreaker(failures int, cooldown time.Duration) Option {
	return func(o *options) { o.breakerFailures, o.breakerCooldown = failures, cooldown }
}

// breaker counts requests in a row that got no reply (ErrTimeout: the bank
// is silent or slow). Refusals of other kinds (a down link, a bad reply)
// neither open nor close it: a down link already fails fast, and a bad
// reply is an answer.
type breaker struct {
	failuresMax int
	cooldown    time.Duration

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool // half-open: one request is on its way
}

// allow reports whether a request may be sent now; a true answer while the
// circuit is half-open makes that request the probe.
func (b *breaker) allow(now time.Time) (probe bool, err error) {
	if b.failuresMax <= 0 {
		return false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.failuresMax {
		return false, nil
	}
	if now.Before(b.openUntil) || b.probing {
		return false, ErrCircuitOpen
	}
	b.probing = true
	return true, nil
}

// open reports whether a request now would be refused.
func (b *breaker) open(now time.Time) bool {
	if b.failuresMax <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= b.failuresMax && (now.Before(b.openUntil) || b.probing)
}

// record counts a request's outcome. A probe that ends in any other way
// than a reply or a time-out (the link dropped before it was sent) gives
// the probe back, so that the next request may try.
func (b *breaker) record(now time.Time, probe bool, err error) {
	if b.failuresMax <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	switch {
	case err == nil || errors.Is(err, ErrBadReply) || errors.Is(err, ErrReplyMismatch):
		b.failures = 0
	case errors.Is(err, context.Canceled):
		// The caller gave up: that says nothing about the bank.
	case errors.Is(err, ErrTimeout):
		b.failures++
		if b.failures >= b.failuresMax {
			b.openUntil = now.Add(b.cooldown)
		}
	}
}

// reset closes the circuit: the bank answered a sign-on.
func (b *breaker) reset() {
	b.mu.Lock()
	b.failures, b.probing = 0, false
	b.mu.Unlock()
}
