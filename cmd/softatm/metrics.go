package main

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm/ledger"
	atmswitch "github.com/softatm/softatm/switch"
)

// redisHook times every Redis command for softatm_redis_command_duration_seconds
// and counts failures in softatm_redis_errors_total.
type redisHook struct{ m *atmswitch.Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.m.ObserveRedis(cmd.Name(), time.Since(start), err, answered(err))
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.m.ObserveRedis("pipeline", time.Since(start), err, answered(err))
		return err
	}
}

// answered reports an error that is Redis's normal answer, not a failure:
// no such key, or NOSCRIPT (go-redis's Script.Run then loads the script).
func answered(err error) bool {
	return errors.Is(err, redis.Nil) || redis.HasErrorPrefix(err, "NOSCRIPT")
}

// instrument adds, to what the switch's own code counts, the collectors
// that watch Main's connections: the bank link's state, the withdrawals by
// state (a bounded count query per scrape, at most every few seconds), and
// Redis command timings. The ISO 8583 observer is set where the bank client
// is made.
func instrument(reg *prometheus.Registry, metrics *atmswitch.Metrics, pool *pgxpool.Pool, l, keys *ledger.Ledger, bankUp func() bool, rc *redis.Client) {
	metrics.LinkUp(bankUp)
	metrics.Committer("ledger", l)
	metrics.Committer("idempotency", keys)
	reg.MustRegister(atmswitch.NewStateCollector(pool))
	reg.MustRegister(newHACollector(pool)) // hametrics.go
	registerLockMetrics(reg, map[string]*ledger.Ledger{"ledger": l, "idempotency": keys})
	if rc != nil {
		rc.AddHook(redisHook{metrics})
	}
}
