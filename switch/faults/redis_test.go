package faults

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm/fixtures/localsrv"
)

// Scenario 5: Redis, the fast gate, is flushed, killed and restarted, and
// cut off (blackholed, then refused) in the middle of a load on two
// instances, with two counters racing for some codes. No code pays twice,
// and QR payouts go on from the database while Redis is away.
func TestScenario5Redis(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{privateRedis: true, redisProxy: true})
	a := e.serve("SATMF501", serveOpts{})
	b := e.serve("SATMF502", serveOpts{})
	tellers := e.loginAll(a, 8)
	phase := func() time.Duration { return e.rnd.Duration(1500*time.Millisecond, 3*time.Second) }
	for round := range soakScale() {
		stop := make(chan struct{})
		wait := e.load(func() []*proc { return []*proc{a, b} }, tellers, 8, stop)
		during := func(name string, f func(), undo func()) {
			time.Sleep(phase())
			before := e.paid.Load()
			f()
			e.fault(name)
			time.Sleep(phase())
			if name == "Redis blackholed" {
				// Every gate call waits out its read timeout (300 ms, one
				// retry): a payout takes seconds, so give it time.
				time.Sleep(2 * time.Second)
			}
			n := e.paid.Load() - before
			if undo != nil {
				undo()
			}
			t.Logf("round %d: %d payouts while %s", round, n, name)
			if n == 0 {
				e.violation("no payout while %s", name)
			}
		}
		during("Redis flushed", func() {
			opt, _ := redis.ParseURL(e.redisSrv.URL)
			c := redis.NewClient(opt)
			defer c.Close()
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Errorf("FLUSHALL: %v", err)
			}
		}, nil)
		during("Redis killed", func() { e.redisSrv.Kill() }, func() {
			e.redisSrv = localsrv.RestartRedis(t, e.redisSrv)
		})
		during("Redis blackholed", func() { _ = e.redisPx.Blackhole() }, func() { _ = e.redisPx.Pass() })
		during("Redis refused and reset", func() { _ = e.redisPx.Refuse(); e.redisPx.ResetAll() }, func() { _ = e.redisPx.Pass() })
		close(stop)
		t.Logf("round %d: %d payouts", round, wait())
		e.settle(a)
		e.rounds.Add(1)
	}
	e.verify()
}
