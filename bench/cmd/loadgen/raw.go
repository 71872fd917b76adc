package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm/fixtures/localsrv"
)

// redisPings is how many sequential PINGs the Redis round trip is timed on.
const redisPings = 2000

type rawResult struct {
	conns        int
	spreadPerSec float64 // commits/s, each goroutine updating its own row, after the load
	spreadBefore float64 // the same, before the load (0: not measured)
	spreadP50    time.Duration
	hotPerSec    float64 // commits/s, every goroutine updating one row
	hotAborts    int64
	redisP50     time.Duration
	redisP99     time.Duration
	err          error
	redisErr     error
}

// rawTarget returns the database the minimal commit program runs in: on
// our own server a database of its own (made once), so that nothing of the
// switch's is touched.
func rawTarget(ctx context.Context, w *world, o opts) (string, error) {
	if w.PGAdmin == "" {
		return "", errors.New("no database given (-database)")
	}
	if o.url != "" {
		return w.PGAdmin, nil
	}
	if w.rawURL == "" {
		u, err := localsrv.CreateDatabase(ctx, w.PGAdmin, "rawbench")
		if err != nil {
			return "", err
		}
		w.rawURL = u
	}
	if w.viaProxy != nil {
		return w.viaProxy(w.rawURL), nil // through the same delay as the switch
	}
	return w.rawURL, nil
}

// rawTable is the table the minimal commit program writes.
const rawTable = "bench_raw"

// measureRawBefore measures the raw commit rate (own rows) before the load,
// for measureRaw to compare with the rate after it: this shared VM's disk
// and CPU swing by ±20% from one run to the next.
func measureRawBefore(ctx context.Context, w *world, o opts) (perSec float64, err error) {
	url, err := rawTarget(ctx, w, o)
	if err != nil {
		return 0, err
	}
	status("raw limit before the load: INSERT+UPDATE commits from %d connections for %s", o.dbConns, o.rawDuration)
	perSec, _, _, err = rawCommits(ctx, url, rawTable, o.dbConns, o.rawDuration, false)
	return perSec, err
}

// measureRaw runs the minimal commit program and the Redis round trip
// against the servers of w. before is the rate measureRawBefore found (0:
// not measured); the report divides by the higher of the two rates, which
// makes softatm's ratio the lower one.
func measureRaw(ctx context.Context, w *world, o opts, before float64) rawResult {
	r := rawResult{conns: o.dbConns, spreadBefore: before}
	if w.Redis != "" {
		r.redisP50, r.redisP99, r.redisErr = redisRoundTrip(ctx, w.Redis)
	}
	url, err := rawTarget(ctx, w, o)
	if err != nil {
		r.err = err
		return r
	}
	status("raw limit: INSERT+UPDATE commits from %d connections for %s (own rows, then one hot row)", o.dbConns, o.rawDuration)
	r.spreadPerSec, r.spreadP50, _, err = rawCommits(ctx, url, rawTable, o.dbConns, o.rawDuration, false)
	if err != nil {
		r.err = err
		return r
	}
	r.hotPerSec, _, r.hotAborts, err = rawCommits(ctx, url, rawTable, o.dbConns, o.rawDuration, true)
	if err != nil {
		r.err = err
	}
	return r
}

// rawCommits is the minimal program: n goroutines, each committing
// SERIALIZABLE transactions of one INSERT and one UPDATE as fast as it can.
// With hot, every UPDATE hits the same row, and conflicts are retried.
func rawCommits(ctx context.Context, url, table string, n int, d time.Duration, hot bool) (perSec float64, p50 time.Duration, aborts int64, err error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return 0, 0, 0, err
	}
	cfg.MaxConns = int32(n)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	defer pool.Close()
	for _, q := range []string{
		`DROP TABLE IF EXISTS ` + table + `_log`, `DROP TABLE IF EXISTS ` + table + `_rows`,
		`CREATE TABLE ` + table + `_rows (id UUID PRIMARY KEY, n BIGINT NOT NULL)`,
		`CREATE TABLE ` + table + `_log (id UUID PRIMARY KEY, row_id UUID NOT NULL, amount BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL)`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return 0, 0, 0, err
		}
	}
	rows := make([]uuid.UUID, n)
	for i := range rows {
		rows[i] = uuid.New()
		if hot && i > 0 {
			rows[i] = rows[0]
			continue
		}
		if _, err := pool.Exec(ctx, `INSERT INTO `+table+`_rows (id, n) VALUES ($1, 0)`, rows[i]); err != nil {
			return 0, 0, 0, err
		}
	}
	var commits, aborted atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var firstErr error
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				start := time.Now()
				err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `INSERT INTO `+table+`_log (id, row_id, amount, at) VALUES ($1, $2, 100000, now())`, uuid.New(), rows[i]); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `UPDATE `+table+`_rows SET n = n + 1 WHERE id = $1`, rows[i])
					return err
				})
				var pe *pgconn.PgError
				switch {
				case err == nil:
					commits.Add(1)
					mine = append(mine, time.Since(start))
				case errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01"):
					aborted.Add(1)
				default:
					mu.Lock()
					if firstErr == nil && ctx.Err() == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	return float64(commits.Load()) / d.Seconds(), quantile(lat, 0.5), aborted.Load(), firstErr
}

func redisRoundTrip(ctx context.Context, url string) (p50, p99 time.Duration, err error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return 0, 0, err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return 0, 0, err
	}
	lat := make([]time.Duration, 0, redisPings)
	for range redisPings {
		start := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return quantile(lat, 0.5), quantile(lat, 0.99), nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func report(out io.Writer, w *world, o opts, res loadResult, raw rawResult) {
	nproc, cpu := machine()
	version, fsync, syncCommit := "?", "?", "?"
	if w.DBURL != "" {
		version, fsync, syncCommit = serverFacts(context.Background(), w.DBURL)
	}
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	label := o.label
	if label == "" {
		label = "run"
	}
	p("## %s", label)
	p("")
	p("machine: %d CPUs, %s; PostgreSQL %s, fsync=%s, synchronous_commit=%s", nproc, cpu, version, fsync, syncCommit)
	mode := "spread"
	if o.hot {
		mode = "hot (one post office, one bank)"
	}
	batch := "serve default"
	if o.ledgerBatch > 0 {
		batch = fmt.Sprintf("%d units, wait %s", o.ledgerBatch, o.ledgerBatchWait)
	}
	p("load: %d clients, %s measured after %s warm-up, rate %s, %s, ledger batch %s, %d switch DB connections",
		o.clients, o.duration, o.warmup, rateText(o.rate), mode, batch, o.dbConns)
	if o.pgDelay > 0 {
		p("PostgreSQL behind the fault proxy: %s one-way delay per chunk, for the switch and the raw commits", o.pgDelay)
	}
	p("")
	rate := float64(res.completed) / res.window.Seconds()
	p("completed withdrawals (and credited deposits, in a mixed run): %d in %s = **%.1f/s**", res.completed, res.window, rate)
	if res.missed > 0 {
		p("fixed-rate starts missed (every client busy): %d", res.missed)
	}
	p("")
	p("| call | n | p50 ms | p95 ms | p99 ms | max ms |")
	p("| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, op := range ops {
		l := res.lat[op]
		name := op
		switch op {
		case "create":
			name = "POST /v1/withdrawals"
		case "scan":
			name = "POST /v1/teller/scan"
		case "confirm":
			name = "POST /v1/teller/confirm"
		case "get":
			name = "GET /v1/withdrawals/{id} (until completed)"
		case "completed":
			name = "create → completed"
		case "deposit_create", "deposit_scan", "deposit_confirm", "credited":
			if len(l) == 0 {
				continue // no deposits in this run (-deposit-share 0)
			}
			name = map[string]string{"deposit_create": "POST /v1/deposits", "deposit_scan": "POST /v1/teller/scan (deposit)",
				"deposit_confirm": "POST /v1/teller/deposits/confirm", "credited": "deposit code → credited"}[op]
		}
		var mx time.Duration
		if len(l) > 0 {
			mx = l[len(l)-1]
		}
		p("| %s | %d | %s | %s | %s | %s |", name, len(l), ms(quantile(l, .5)), ms(quantile(l, .95)), ms(quantile(l, .99)), ms(mx))
	}
	p("")
	if len(res.errors) == 0 {
		p("errors: none")
	} else {
		p("errors (whole run, by call and code):")
		for _, k := range sortedKeys(res.errors) {
			p("- %s: %d", k, res.errors[k])
		}
	}
	p("")
	committerReport(p, res)
	cpuReport(p, res)
	statementsReport(p, res)
	p("transactions rolled back per withdrawal created: %.2f (serialization conflicts re-run, refusals); %.2f PostgreSQL xids per withdrawal created (write transactions, re-runs and subtransactions included)",
		res.rollbacksPerWithdrawal, res.commitsPerWithdrawal)
	if res.updatesPerWithdrawal > 0 {
		p("withdrawals row updates per withdrawal created: %.2f, of which HOT (no index entry written): %.2f",
			res.updatesPerWithdrawal, res.hotUpdatesPerWithdrawal)
	}
	if o.skipRaw {
		return
	}
	if raw.err != nil {
		p("raw commits: not measured: %v", raw.err)
	} else {
		p("raw commits (INSERT+UPDATE, SERIALIZABLE, %d connections, own rows): %.0f/s before the load, %.0f/s after (p50 %s ms)",
			raw.conns, raw.spreadBefore, raw.spreadPerSec, ms(raw.spreadP50))
		p("raw commits, all on one hot row: %.0f/s (%d serialization aborts)", raw.hotPerSec, raw.hotAborts)
		if rc := max(raw.spreadPerSec, raw.spreadBefore); rc > 0 {
			p("**withdrawals per raw commit: %.3f** (%.1f withdrawals/s ÷ %.0f raw commits/s, the higher of the two, same run)", rate/rc, rate, rc)
		}
	}
	if raw.redisErr != nil {
		p("Redis round trip: not measured: %v", raw.redisErr)
	} else if w.Redis != "" {
		p("Redis round trip (PING, sequential): p50 %s ms, p99 %s ms", ms(raw.redisP50), ms(raw.redisP99))
	}
	p("")
}

// cpuReport prints the CPU each process used over the whole load per
// withdrawal completed over the whole load.
func cpuReport(p func(string, ...any), res loadResult) {
	if len(res.cpu) == 0 || res.flowsAll == 0 {
		return
	}
	p("")
	p("CPU per completed withdrawal (/proc/<pid>/stat over the whole load, %s, %d withdrawals completed in it):", res.elapsed.Round(time.Millisecond), res.flowsAll)
	p("")
	p("| process | CPU s | ms per withdrawal | share of one core |")
	p("| --- | ---: | ---: | ---: |")
	var server float64
	for _, c := range res.cpu {
		p("| %s | %.2f | %.2f | %.0f%% |", c.name, c.seconds, 1000*c.seconds/float64(res.flowsAll), 100*c.seconds/res.elapsed.Seconds())
		if c.server {
			server += c.seconds
		}
	}
	p("| **server (switch + PostgreSQL + Redis)** | %.2f | **%.2f** | %.0f%% |", server, serverCPU(res), 100*server/res.elapsed.Seconds())
	p("")
}

// serverCPU is the server's (switch, PostgreSQL, Redis) CPU ms per
// completed withdrawal over the load.
func serverCPU(res loadResult) float64 {
	if res.flowsAll == 0 {
		return 0
	}
	var server float64
	for _, c := range res.cpu {
		if c.server {
			server += c.seconds
		}
	}
	return 1000 * server / float64(res.flowsAll)
}

// commitCounts are a run's commits per withdrawal created, from the
// switch's metrics.
type commitCounts struct {
	waited     float64  // durable commits a caller waits for
	background float64  // durable commits no caller waits for
	fsyncs     float64  // durable batch commits
	parts      []string // per committer: durable in batches, direct, lazy
}

// durableCommits counts a run's commits per withdrawal created. A lazy
// unit (an idempotency record, ledger.LazyCommit) is committed but not
// waited for until its WAL is on disk: not a durable commit. A background
// unit (the outbox's, the sweeper's, ledger.Background) is durable but no
// caller waits for it. A direct one (ledger.Direct: a claim, a first row)
// is durable and waited for, outside the batches.
func durableCommits(res loadResult) commitCounts {
	m := res.metrics
	var c commitCounts
	if m == nil || res.startedAll == 0 {
		return c
	}
	n := float64(res.startedAll)
	var durable float64
	for _, name := range []string{"ledger", "idempotency"} {
		lab := `{committer="` + name + `"}`
		u, lazy, direct := m["softatm_ledger_batch_units_total"+lab], m["softatm_ledger_lazy_units_total"+lab], m["softatm_ledger_direct_units_total"+lab]
		durable += u - lazy + direct
		c.background += m["softatm_ledger_background_units_total"+lab]
		c.fsyncs += m["softatm_ledger_batches_total"+lab] - m["softatm_ledger_lazy_batches_total"+lab]
		c.parts = append(c.parts, fmt.Sprintf("%s %.2f durable in batches + %.2f direct + %.2f lazy", name, (u-lazy)/n, direct/n, lazy/n))
	}
	c.waited, c.background, c.fsyncs = (durable-c.background)/n, c.background/n, c.fsyncs/n
	return c
}

// committerReport prints the committers' figures from the switch's
// metrics: units per batch, utilisation, the time per unit by batch size,
// and the units (durable commits a caller waits for) per withdrawal.
func committerReport(p func(string, ...any), res loadResult) {
	m := res.metrics
	if m == nil {
		return
	}
	const l = `{committer="ledger"}`
	batches := m["softatm_ledger_batches_total"+l]
	if batches <= 0 {
		return
	}
	p("ledger committer (whole load, from /metrics): %.0f batches, %.1f units per batch, %.2f round trips per batch, busy %.0f%% of the time, %.0f transaction re-runs",
		batches, m["softatm_ledger_batch_units_total"+l]/batches, m["softatm_ledger_round_trips_total"+l]/batches,
		100*m["softatm_ledger_committer_busy_seconds_total"+l]/res.elapsed.Seconds(), m["softatm_ledger_retries_total"])
	p("")
	p("| batch size (units) | batches | units | ms per batch | ms per unit |")
	p("| --- | ---: | ---: | ---: | ---: |")
	for _, size := range []string{"1", "2-4", "5-8", "9-16", "17-32", "33-64", "65+"} {
		lab := `{committer="ledger",size="` + size + `"}`
		b, u, busy := m["softatm_ledger_batches_by_size_total"+lab], m["softatm_ledger_batch_units_by_size_total"+lab], m["softatm_ledger_committer_busy_seconds_by_size_total"+lab]
		if b > 0 {
			p("| %s | %.0f | %.0f | %.2f | %.3f |", size, b, u, 1000*busy/b, 1000*busy/u)
		}
	}
	p("")
	if res.startedAll > 0 {
		dc := durableCommits(res)
		p("**durable commits a caller waits for per withdrawal: %.2f** (commits per withdrawal created: %s; of the durable, %.2f are the outbox's, sweeper's and callbacks', which no caller waits for); %.2f durable batch commits (fsyncs) per withdrawal, besides the direct ones",
			dc.waited, strings.Join(dc.parts, ", "), dc.background, dc.fsyncs)
	}
}
