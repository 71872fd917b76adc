// Package replay owns the Redis fast gate in front of the withdrawal table:
// claim leases (one teller at a time holds a code), spent markers (a paid
// code is refused without a database read), fixed-window rate limits and
// failure counters (numeric-code guessing is capped per kiosk, per teller
// and per post office; see TakeTry).
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
// compare-and-delete, INCR with its PEXPIRE, and checking several capped
// counters with counting a try against all of them (TakeTry). A script
// touches several keys only in TakeTry and GiveBackTry; that is fine on one
// Redis with Sentinel (the deployment DESIGN.md names), and on a Redis
// Cluster the caller would have to put those keys in one slot.
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

// Cap is one capped failure counter: at most Limit tries per window are
// evaluated against Key (e.g. "numeric:kiosk:K1").
type Cap struct {
	Key   string
	Limit int
}

// Tries is the answer of TakeTry.
type Tries struct {
	// Taken: a try was counted against every cap, and the caller may
	// evaluate it.
	Taken bool
	// Full is the index of the first cap found at its limit when not Taken.
	Full int
	// Left is how many more tries the caps allow in their windows after
	// this one: the least over the caps (0 when not Taken).
	Left int
	// Wait is how long until the full cap's window ends, when not Taken.
	Wait time.Duration
}

// takeScript checks every counter against its limit and, only if none has
// reached it, counts the try against all of them, in one step. Checking
// and counting apart let 30 parallel guesses all pass a check that none of
// them had counted yet (10 of them were evaluated against a cap of 5); and
// counting a refused try would let one full cap use up the others.
// KEYS: the counters; ARGV[1]: the window in ms; ARGV[1+i]: KEYS[i]'s limit.
// Returns {1, -1, left, 0} or {0, index of the full counter (from 0), 0, its PTTL}.
var takeScript = redis.NewScript(`
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0') or 0
  if n >= tonumber(ARGV[i + 1]) then
    return {0, i - 1, 0, redis.call('PTTL', k)}
  end
end
local left = -1
for i, k in ipairs(KEYS) do
  local n = redis.call('INCR', k)
  if n == 1 or redis.call('PTTL', k) < 0 then
    redis.call('PEXPIRE', k, ARGV[1])
  end
  local l = tonumber(ARGV[i + 1]) - n
  if left < 0 or l < left then
    left = l
  end
end
return {1, -1, left, 0}
`)

// giveBackScript takes one try off each counter that still has one, and
// never creates a counter: one whose window has ended stays gone (a DECR
// would leave -1 without a TTL). DECR keeps the window's TTL.
var giveBackScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0') or 0
  if n > 0 then
    redis.call('DECR', k)
  end
end
return 0
`)

// TakeTry counts one try against every cap, atomically, if none of them
// has reached its limit; otherwise it counts nothing and names the full
// cap. The caller evaluates a try only when Taken, so at most Limit tries
// per window are ever evaluated against a cap, however many arrive at once.
// A try that turns out right is given back with GiveBackTry: the counters
// then count wrong tries only. Each counter's window starts at its first
// try.
func (g *Guard) TakeTry(ctx context.Context, caps []Cap, window time.Duration) (Tries, error) {
	if len(caps) == 0 || window <= 0 {
		return Tries{}, badArg("take try needs caps and a positive window")
	}
	keys := make([]string, len(caps))
	args := make([]any, 1, len(caps)+1)
	args[0] = ms(window)
	for i, c := range caps {
		if c.Key == "" || c.Limit <= 0 {
			return Tries{}, badArg("take try needs a key and a positive limit for every cap")
		}
		keys[i] = g.prefix + "fail:" + c.Key
		args = append(args, c.Limit)
	}
	res, err := takeScript.Run(ctx, g.c, keys, args...).Int64Slice()
	if err != nil {
		return Tries{}, unavailable(err)
	}
	if len(res) != 4 || (res[0] == 0 && (res[1] < 0 || int(res[1]) >= len(caps))) {
		return Tries{}, unavailable(errors.New("take try script: unexpected reply"))
	}
	if res[0] == 1 {
		return Tries{Taken: true, Full: -1, Left: int(max(res[2], 0))}, nil
	}
	return Tries{Full: int(res[1]), Wait: time.Duration(max(res[3], 0)) * time.Millisecond}, nil
}

// GiveBackTry takes back a try TakeTry counted against caps (the try was
// right). A counter whose window has ended meanwhile is left alone.
func (g *Guard) GiveBackTry(ctx context.Context, caps []Cap) error {
	if len(caps) == 0 {
		return badArg("give back try needs caps")
	}
	keys := make([]string, len(caps))
	for i, c := range caps {
		if c.Key == "" {
			return badArg("give back try needs a key for every cap")
		}
		keys[i] = g.prefix + "fail:" + c.Key
	}
	if err := giveBackScript.Run(ctx, g.c, keys).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}
