// Command loadgen is softatm's end-to-end load generator. It runs the whole
// withdrawal — the bank app's create, the teller's scan and confirm, then
// waiting until the bank acknowledged the 0220 (completed) — from N
// concurrent clients for a fixed time, and prints completed withdrawals per
// second, p50/p95/p99/max latency of every API call and errors by code.
//
// By default it starts the whole system itself, as `softatm demo` does:
// private PostgreSQL with fsync on, Redis, the issuer simulator (in this
// process) and `softatm serve` (a child process), with bench banks, post
// offices and tellers whose money never runs out, so that the figures measure
// the switch and not the fixtures. With -url it drives a running system
// instead, as the demo fixtures' MB app and tellers.
//
// In the same run it measures the machine's raw limits: PostgreSQL write
// commits done by a minimal program with no switch logic (an INSERT plus an
// UPDATE per commit from N goroutines, against the same durable server),
// and a Redis round trip. The report gives withdrawals per raw commit, the
// CPU each process spent per withdrawal, the committer's time per unit by
// batch size, its round trips per batch, and the durable commits waited
// for per withdrawal; -curve adds p50/p99 at fixed fractions of the
// saturated rate, -pg-delay puts a network delay before PostgreSQL.
//
//	go run ./bench/cmd/loadgen -duration 20s -clients 32
//	go run ./bench/cmd/loadgen -hot -rate 100          # fixed rate, one PO, one bank
//	go run ./bench/cmd/loadgen -url http://127.0.0.1:8080 -duration 10s
//
// It imports the switch's packages only to set up its own data; it must not
// be imported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/softatm/softatm/fixtures"
)

type opts struct {
	url, database, redis string
	softatm              string

	clients, dbConns   int
	duration, warmup   time.Duration
	rate               float64
	hot                bool
	postOffices, banks int
	accountsPerBank    int
	fee                int64
	accountDailyMax    int64
	poll               time.Duration
	wait               time.Duration

	ledgerBatch     int
	ledgerBatchWait time.Duration
	admin           string

	rawDuration time.Duration
	skipRaw     bool
	label       string

	pgDelay time.Duration

	// compare, another softatm binary, makes the run alternate it with
	// softatm, rounds times each (runCompare).
	compare string
	rounds  int

	// statements > 0 prints PostgreSQL's busiest statements of the load
	// (pg_stat_statements), that many.
	statements int

	curve         bool
	curveDuration time.Duration
	curveClients  int

	// depositShare is the share of flows that are deposits (cash in):
	// -mixed sets 0.3 (70% withdrawals, 30% deposits).
	depositShare float64
}

func status(format string, a ...any) { fmt.Fprintf(os.Stderr, "==> "+format+"\n", a...) }

func main() {
	var o opts
	flag.StringVar(&o.url, "url", "", "drive a running switch at this URL (demo fixtures' credentials) instead of starting one")
	flag.StringVar(&o.database, "database", "", "with -url: its DATABASE_URL, to count commits per withdrawal and measure raw commits")
	flag.StringVar(&o.redis, "redis", "", "with -url: its REDIS_URL, to measure the Redis round trip")
	flag.StringVar(&o.softatm, "softatm", "", "softatm binary to run (default: go build it)")
	flag.IntVar(&o.clients, "clients", 32, "concurrent clients, each a bank app user and a teller at a kiosk")
	flag.IntVar(&o.dbConns, "db-conns", 32, "PostgreSQL connections of the switch")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "how long to measure")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before measuring starts")
	flag.Float64Var(&o.rate, "rate", 0, "start this many withdrawals per second (0: as fast as the clients go)")
	flag.BoolVar(&o.hot, "hot", false, "all payouts at one post office, all accounts at one bank")
	flag.IntVar(&o.postOffices, "post-offices", 8, "bench post offices (tellers are spread over them)")
	flag.IntVar(&o.banks, "banks", 4, "bench banks (accounts are spread over them)")
	flag.IntVar(&o.accountsPerBank, "accounts", 1000, "bench accounts per bank")
	flag.Int64Var(&o.fee, "fee", 0, "fee per withdrawal charged to each bench bank, in dong")
	flag.Int64Var(&o.accountDailyMax, "account-daily-max", 20_000_000, "the switch's per-account daily maximum (0: off)")
	flag.DurationVar(&o.poll, "poll", 20*time.Millisecond, "how often a client polls its withdrawal until completed (when an answer comes back still paid)")
	flag.DurationVar(&o.wait, "wait", 10*time.Second, "ask the switch to hold each status GET up to this long until the withdrawal leaves paid (?changed_from=paid&wait=); 0: plain polling. A switch that does not know the parameters answers at once, and the client polls")
	flag.IntVar(&o.ledgerBatch, "ledger-batch", 0, "passed to softatm serve -ledger-batch (0: serve's default)")
	flag.DurationVar(&o.ledgerBatchWait, "ledger-batch-wait", 0, "passed to softatm serve -ledger-batch-wait")
	flag.StringVar(&o.admin, "admin", "", "the switch's admin listener (metrics, /debug/pprof/), where the committer figures are scraped: passed to softatm serve -admin-listen (default: a free loopback port); with -url, where the running switch serves it (default 127.0.0.1:9090)")
	flag.DurationVar(&o.rawDuration, "raw-duration", 5*time.Second, "how long each raw-limit measurement runs")
	flag.DurationVar(&o.pgDelay, "pg-delay", 0, "put PostgreSQL behind the fault proxy (fixtures/faultproxy) with this one-way delay per chunk, for the switch and the raw commits: a database on another machine or zone")
	flag.BoolVar(&o.curve, "curve", false, "after the closed-loop run, fixed-rate runs at 20, 40, 60, 70, 80 and 90% of its rate: p50/p99 per call at each, and where the knee is")
	flag.DurationVar(&o.curveDuration, "curve-duration", 10*time.Second, "how long each -curve level is measured")
	flag.IntVar(&o.curveClients, "curve-clients", 128, "clients of the -curve levels: enough that a start seldom finds them all busy (open loop)")
	flag.StringVar(&o.compare, "compare", "", "another softatm binary: run the load with -softatm and with this one alternately, -rounds times each, each on a fresh system, and print both side by side with medians (this machine's speed swings from minute to minute: compare within one run)")
	flag.IntVar(&o.rounds, "rounds", 3, "with -compare: how many runs of each binary")
	flag.IntVar(&o.statements, "statements", 0, "print this many of PostgreSQL's statements that took the most time during the load (pg_stat_statements, loaded in the private server): calls and ms per withdrawal")
	flag.BoolVar(&o.skipRaw, "skip-raw", false, "do not measure the raw limits")
	flag.StringVar(&o.label, "label", "", "a name for this run in the report")
	flag.Float64Var(&o.depositShare, "deposit-share", 0, "share of flows that are deposits (cash in: code, scan, confirm until credited), 0 to 1")
	mixed := flag.Bool("mixed", false, "a mixed load: 70% withdrawals, 30% deposits (-deposit-share 0.3)")
	flag.Parse()
	if *mixed {
		o.depositShare = 0.3
	}
	if o.depositShare < 0 || o.depositShare > 1 {
		fmt.Fprintln(os.Stderr, "-deposit-share must be between 0 and 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// statsFlush is how long PostgreSQL may take to publish a backend's
// transaction counts in pg_stat_database.
const statsFlush = 1500 * time.Millisecond

func run(ctx context.Context, o opts) error {
	if o.clients < 1 || o.duration <= 0 {
		return errors.New("-clients and -duration must be positive")
	}
	if o.curve && o.rate > 0 {
		return errors.New("-curve starts from a closed-loop run: no -rate")
	}
	if o.compare != "" {
		if o.url != "" || o.curve || o.rounds < 1 {
			return errors.New("-compare starts its own systems (no -url), has no -curve, and needs -rounds of at least 1")
		}
		return runCompare(ctx, os.Stdout, o)
	}
	var w *world
	if o.url == "" {
		var err error
		if w, err = startWorld(ctx, o); err != nil {
			return err
		}
		defer w.Close()
	} else {
		var err error
		if w, err = targetWorld(o); err != nil {
			return err
		}
	}

	res, err := measureAndReport(ctx, os.Stdout, w, o)
	if err != nil {
		return err
	}
	if o.curve {
		return runCurve(ctx, os.Stdout, w, o, float64(res.completed)/res.window.Seconds())
	}
	return nil
}

// measureAndReport measures the raw commit rate (unless -skip-raw), runs
// the load, measures the raw rate again and prints the report.
func measureAndReport(ctx context.Context, out io.Writer, w *world, o opts) (loadResult, error) {
	var rawBefore float64
	if !o.skipRaw {
		var err error
		if rawBefore, err = measureRawBefore(ctx, w, o); err != nil {
			status("raw limit before the load: not measured: %v", err)
		}
	}
	res, err := measureLoad(ctx, w, o)
	if err != nil {
		return res, err
	}
	var raw rawResult
	if !o.skipRaw {
		raw = measureRaw(ctx, w, o, rawBefore)
	}
	report(out, w, o, res, raw)
	return res, nil
}

// measureLoad runs one load and collects, over it, the switch's metrics,
// the CPU time of every process and PostgreSQL's transaction counts.
func measureLoad(ctx context.Context, w *world, o opts) (loadResult, error) {
	var before dbCounters
	if w.DBURL != "" {
		before, _ = readCounters(ctx, w.DBURL)
	}
	mBefore, err := scrape(ctx, w.AdminURL)
	if err != nil {
		status("no committer figures: %v", err)
	}
	if o.statements > 0 {
		if err := resetStatements(ctx, w.DBURL); err != nil {
			status("no statement figures: %v", err)
		}
	}
	procs := findProcs(ctx, w)
	cpuBefore := procs.sample()
	loadStart := time.Now()
	status("load: %d clients, %s warm-up, %s measured, rate %s, hot=%v", o.clients, o.warmup, o.duration, rateText(o.rate), o.hot)
	res, err := runLoad(ctx, w, o)
	if err != nil {
		return res, err
	}
	res.elapsed = time.Since(loadStart)
	res.cpu = procs.use(cpuBefore, procs.sample())
	if mAfter, err := scrape(ctx, w.AdminURL); err != nil {
		status("no committer figures: %v", err)
	} else if mBefore != nil {
		res.metrics = map[string]float64{}
		for k, v := range mAfter {
			res.metrics[k] = v - mBefore[k]
		}
	}
	if o.statements > 0 {
		if res.statements, err = topStatements(ctx, w.DBURL, o.statements); err != nil {
			status("no statement figures: %v", err)
		}
	}
	if w.DBURL != "" {
		time.Sleep(statsFlush) // let the last rollbacks reach pg_stat_database
		after, _ := readCounters(ctx, w.DBURL)
		if res.startedAll > 0 {
			res.commitsPerWithdrawal = float64(after.xids-before.xids) / float64(res.startedAll)
			res.rollbacksPerWithdrawal = float64(after.rollbacks-before.rollbacks) / float64(res.startedAll)
			res.updatesPerWithdrawal = float64(after.updates-before.updates) / float64(res.startedAll)
			res.hotUpdatesPerWithdrawal = float64(after.hotUpdates-before.hotUpdates) / float64(res.startedAll)
		}
	}
	return res, nil
}

func rateText(r float64) string {
	if r <= 0 {
		return "unbounded (closed loop)"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// targetWorld drives a running system as the demo fixtures' banks and
// tellers. Their balances and daily limits are small: long runs will see
// declines (errors by code say so).
func targetWorld(o opts) (*world, error) {
	d, err := fixtures.LoadDemo()
	if err != nil {
		return nil, err
	}
	admin := o.admin
	if admin == "" {
		admin = "127.0.0.1:9090" // softatm serve's default -admin-listen
	}
	w := &world{URL: strings.TrimRight(o.url, "/"), AdminURL: "http://" + admin, DBURL: o.database, PGAdmin: o.database, Redis: o.redis}
	for _, b := range d.Banks {
		bb := benchBank{Code: b.Code, ClientID: b.ClientID, Secret: b.ClientSecret}
		for _, a := range d.Accounts {
			if a.Bank == b.Code && !a.Blocked {
				bb.Accounts = append(bb.Accounts, a.Number)
			}
		}
		if len(bb.Accounts) > 0 {
			w.Banks = append(w.Banks, bb)
		}
	}
	for _, p := range d.PostOffices {
		w.Tellers = append(w.Tellers, benchTeller{Username: p.Teller.Username, Password: p.Teller.Password, PostOffice: p.Code})
	}
	if o.hot {
		w.Banks, w.Tellers = w.Banks[:1], w.Tellers[:1]
	}
	status("driving %s as the demo fixtures (%d banks, %d tellers); their money runs out under long load", w.URL, len(w.Banks), len(w.Tellers))
	return w, nil
}

func machine() (nproc int, cpu string) {
	nproc = runtime.NumCPU()
	cpu = "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.Index(line, ":"); i >= 0 {
					cpu = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	return
}
