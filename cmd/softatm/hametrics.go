package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/softatm/softatm/ledger"
)

// haScrapeTimeout bounds the database queries of one scrape of the HA
// collector: a scrape during a failover must answer, with the primary
// reported unreachable, not hang.
const haScrapeTimeout = 2 * time.Second

// haCollector reports, at each scrape, what an operator of the highly
// available topology watches (README, "Running it highly available"):
// whether the switch reaches a primary, how many synchronous standbys that
// primary has (0 means commits are acknowledged by one machine only), how
// far the standbys' replay is behind, and the primary's timeline, which
// grows by one at each failover or switchover. pg_stat_replication shows
// its rows in full only to a superuser or a member of pg_monitor: grant
// that role to the switch's database user.
type haCollector struct {
	pool                                *pgxpool.Pool
	reachable, standbys, lag, timelineG *prometheus.Desc
}

func newHACollector(pool *pgxpool.Pool) *haCollector {
	return &haCollector{pool: pool,
		reachable: prometheus.NewDesc("softatm_db_primary_reachable",
			"1 if the switch reaches a PostgreSQL primary that accepts writes, 0 while none answers (failover under way).", nil, nil),
		standbys: prometheus.NewDesc("softatm_db_sync_standbys",
			"Synchronous standbys the primary has now (sync or quorum); 0: commits are on one machine only.", nil, nil),
		lag: prometheus.NewDesc("softatm_db_replication_lag_bytes",
			"The largest distance, in WAL bytes, between the primary's WAL and a standby's replay.", nil, nil),
		timelineG: prometheus.NewDesc("softatm_db_timeline",
			"The primary's timeline: it grows by one at each failover or switchover.", nil, nil),
	}
}

func (c *haCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reachable
	ch <- c.standbys
	ch <- c.lag
	ch <- c.timelineG
}

func (c *haCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), haScrapeTimeout)
	defer cancel()
	var (
		readOnly        bool
		standbys        int64
		lagBytes        float64
		timeline        int64
		reachableResult float64
	)
	err := c.pool.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		(SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')),
		COALESCE((SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) FROM pg_stat_replication), 0)::float8,
		('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint`).
		Scan(&readOnly, &standbys, &lagBytes, &timeline)
	if err == nil && !readOnly {
		reachableResult = 1
	}
	ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, reachableResult)
	if reachableResult == 0 {
		return // the rest describes a primary; there is none to describe
	}
	ch <- prometheus.MustNewConstMetric(c.standbys, prometheus.GaugeValue, float64(standbys))
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lagBytes)
	ch <- prometheus.MustNewConstMetric(c.timelineG, prometheus.GaugeValue, float64(timeline))
}

// registerLockMetrics exports the commit lock's counters (ledger/lease.go)
// of each committer: how often it was taken, how long committers waited for
// it, and how often a wait ran out (the batch then ran without it: another
// instance held it too long).
func registerLockMetrics(reg prometheus.Registerer, committers map[string]*ledger.Ledger) {
	for name, l := range committers {
		labels := prometheus.Labels{"committer": name}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "softatm_ledger_commit_lock_taken_total",
				Help: "Holds of the database-wide commit lock taken by this instance's committer.", ConstLabels: labels},
				func() float64 { return float64(l.LockStats().Taken) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "softatm_ledger_commit_lock_wait_seconds_total",
				Help: "Time this instance's committer spent waiting for the commit lock.", ConstLabels: labels},
				func() float64 { return l.LockStats().Wait.Seconds() }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "softatm_ledger_commit_lock_waited_out_total",
				Help: "Batches run without the commit lock because the wait for it ran out or failed.", ConstLabels: labels},
				func() float64 { s := l.LockStats(); return float64(s.WaitedOut + s.Failed) }),
		)
	}
}
