// Package replay owns the Redis fast gate in front of the withdrawal table:
// claim leases (one teller at a time holds a code), spent markers (a paid
// code is refused without a database read), fixed-window rate limits and
// failure counters (numeric-code guessing is capped per kiosk, per teller and
// globally).
//
// The database is always the record: with Redis flushed or down no code may
// pay twice, because every state change is still a conditional UPDATE. So
// this package never decides alone; it answers fast, and every Redis error
// comes back as softatm.EUnavailable so that the caller can fall back to the
// database (or, for numeric codes whose failure caps live here, refuse).
//
// Keys, all under the prefix given to New and all with a TTL:
//
//	<prefix>claim:<withdrawal id>  holder          SET NX PX, refreshed by its holder
//	<prefix>spent:<withdrawal id>  "1"             until the code's expiry + skew
//	<prefix>rl:<key>               request count   fixed window
//	<prefix>fail:<key>             failure count   fixed window
//
// Lua is used only where two steps must be atomic: claim-or-refresh,
// compare-and-delete, and INCR with its PEXPIRE.
//
// This package may import only the root softatm package among softatm
// packages.
package replay

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm"
)

// MinSpentTTL is the shortest a spent marker is kept. A caller may compute a
// TTL from an expiry that has just passed (or a clock slightly ahead); the
// marker is still worth a minute, since other instances' clocks differ.
const MinSpentTTL = time.Minute

// Guard is the Redis fast gate. It is safe for concurrent use.
type Guard struct {
	c      redis.UniversalClient
	prefix string
}

// New returns a Guard on client whose keys all start with prefix (e.g.
// "softatm:"), so that several deployments or tests can share one Redis.
func New(client redis.UniversalClient, prefix string) *Guard {
	return &Guard{c: client, prefix: prefix}
}

func unavailable(err error) error {
	return softatm.Wrap(softatm.EUnavailable, "replay guard unavailable", err)
}

func badArg(format string, args ...any) error {
	return softatm.Errorf(softatm.EInvalid, format, args...)
}

// ms converts a TTL to whole milliseconds, at least 1: PX and PEXPIRE take
// integers and refuse 0.
func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// claimScript sets the lease if it is free, refreshes it if the same holder
// already has it, and otherwise returns the current holder.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1]}
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, v}
end
return {0, v}
`)

// releaseScript deletes the lease only if holder still has it, so a teller
// whose lease ran out cannot release a lease another teller has since taken.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// incrScript counts in a fixed window: the first hit of a window sets its
// TTL. The PTTL check also repairs a counter left without one (it cannot
// happen through this package, but a key without a TTL would block forever).
var incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// Claim takes the lease on a withdrawal for holder (e.g. "kiosk:K1:teller:T7")
// for ttl. If holder already has it, the lease is refreshed and ok is true.
// If another holder has it, ok is false and currentHolder names it.
func (g *Guard) Claim(ctx context.Context, withdrawalID, holder string, ttl time.Duration) (ok bool, currentHolder string, err error) {
	if withdrawalID == "" || holder == "" {
		return false, "", badArg("claim needs a withdrawal id and a holder")
	}
	if ttl <= 0 {
		return false, "", badArg("claim TTL %s must be positive", ttl)
	}
	res, err := claimScript.Run(ctx, g.c, []string{g.prefix + "claim:" + withdrawalID}, holder, ms(ttl)).Slice()
	if err != nil {
		return false, "", unavailable(err)
	}
	if len(res) != 2 {
		return false, "", unavailable(errors.New("claim script: unexpected reply"))
	}
	won, _ := res[0].(int64)
	cur, _ := res[1].(string)
	return won == 1, cur, nil
}

// Release gives the lease up if holder has it; otherwise it does nothing.
func (g *Guard) Release(ctx context.Context, withdrawalID, holder string) error {
	if withdrawalID == "" || holder == "" {
		return badArg("release needs a withdrawal id and a holder")
	}
	if err := releaseScript.Run(ctx, g.c, []string{g.prefix + "claim:" + withdrawalID}, holder).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// MarkSpent records that a withdrawal's code has paid, for ttl (the code's
// expiry plus the clock skew, from now; at least MinSpentTTL). After the
// marker expires the code itself has expired, and the database refuses it
// in any case.
func (g *Guard) MarkSpent(ctx context.Context, withdrawalID string, ttl time.Duration) error {
	if withdrawalID == "" {
		return badArg("mark spent needs a withdrawal id")
	}
	ttl = max(ttl, MinSpentTTL)
	if err := g.c.Set(ctx, g.prefix+"spent:"+withdrawalID, "1", ttl).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Spent reports whether MarkSpent was called for the withdrawal and its
// marker has not expired. false is not proof of anything: the database is.
func (g *Guard) Spent(ctx context.Context, withdrawalID string) (bool, error) {
	if withdrawalID == "" {
		return false, badArg("spent needs a withdrawal id")
	}
	n, err := g.c.Exists(ctx, g.prefix+"spent:"+withdrawalID).Result()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
}

// Allow counts one request against key (e.g. "numeric:kiosk:K1") in a fixed
// window and reports whether it is within limit, and how many requests are
// left in this window.
func (g *Guard) Allow(ctx context.Context, key string, limit int, window time.Duration) (allowed bool, remaining int, err error) {
	if key == "" || limit <= 0 || window <= 0 {
		return false, 0, badArg("allow needs a key, a positive limit and a positive window")
	}
	n, err := g.incr(ctx, g.prefix+"rl:"+key, window)
	if err != nil {
		return false, 0, err
	}
	return n <= limit, max(limit-n, 0), nil
}

// Fail counts one failure against key in a fixed window (the window starts
// at the first failure) and returns the count so far; the caller locks out
// at its own threshold.
func (g *Guard) Fail(ctx context.Context, key string, window time.Duration) (count int, err error) {
	if key == "" || window <= 0 {
		return 0, badArg("fail needs a key and a positive window")
	}
	return g.incr(ctx, g.prefix+"fail:"+key, window)
}

// Failures returns the failures counted against key in its current window.
func (g *Guard) Failures(ctx context.Context, key string) (int, error) {
	if key == "" {
		return 0, badArg("failures needs a key")
	}
	v, err := g.c.Get(ctx, g.prefix+"fail:"+key).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}

// ResetFailures forgets the failures counted against key, e.g. after a
// teller's successful login. Failure counts for numeric codes should not be
// reset on success: guessing one code must not buy more guesses at others.
func (g *Guard) ResetFailures(ctx context.Context, key string) error {
	if key == "" {
		return badArg("reset failures needs a key")
	}
	if err := g.c.Del(ctx, g.prefix+"fail:"+key).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Ping checks that Redis answers.
func (g *Guard) Ping(ctx context.Context) error {
	if err := g.c.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (g *Guard) incr(ctx context.Context, key string, window time.Duration) (int, error) {
	n, err := incrScript.Run(ctx, g.c, []string{key}, ms(window)).Int64()
	if err != nil {
		return 0, unavailable(err)
	}
	return int(n), nil
}
