package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/faultproxy"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/iso/banksim"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/auth"
	"github.com/softatm/softatm/switch/code"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// Bench data. Every withdrawal is benchAmount; accounts and tills hold so
// much that nothing runs out in any run this tool can make.
const (
	benchAmount     = 100_000
	benchBalance    = 1 << 50 // dong at the simulated issuer, per account
	benchTillCash   = 1 << 50 // dong in each bench post office's till
	benchCurrency   = "704"
	benchPassword   = "bench-password-0001"
	benchBcryptCost = 4 // bench users only: their hashes are made at setup, not measured
	serveStartMax   = 60 * time.Second
)

// world is the system under test, as the load sees it.
type world struct {
	URL      string
	AdminURL string // the switch's /metrics, on its admin listener
	DBURL    string // "" in target mode without -database
	PGAdmin  string // the server's admin URL, for the raw-commit database
	Redis    string
	Banks    []benchBank
	Tellers  []benchTeller
	Sim      *banksim.Sim
	rawURL   string // the raw-commit database, once made
	// viaProxy rewrites a URL of our PostgreSQL to go through the delaying
	// fault proxy (-pg-delay); nil: direct.
	viaProxy func(string) string
	// SwitchPID is the switch's process (0: not ours), for its CPU time.
	SwitchPID int

	stop []func()
}

type benchBank struct {
	Code, ClientID, Secret string
	Accounts               []string
}

type benchTeller struct {
	Username, Password, PostOffice string
}

func (w *world) Close() {
	for i := len(w.stop) - 1; i >= 0; i-- {
		w.stop[i]()
	}
}

// startWorld starts private PostgreSQL (fsync on), Redis, the issuer
// simulator (in this process) and `softatm serve` (a child process), and
// loads the bench data.
func startWorld(ctx context.Context, o opts) (*world, error) {
	w := &world{}
	ok := false
	defer func() {
		if !ok {
			w.Close()
		}
	}()
	dir, err := os.MkdirTemp("", "softatm-bench-")
	if err != nil {
		return nil, err
	}
	w.stop = append(w.stop, func() { _ = os.RemoveAll(dir) })
	status("starting private PostgreSQL (fsync on) in %s", dir)
	pgOpt := localsrv.PostgresOptions{Durable: true}
	if o.statements > 0 {
		pgOpt.Settings = []string{"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"}
	}
	pg, err := localsrv.StartPostgres(ctx, filepath.Join(dir, "pg"), pgOpt)
	if err != nil {
		return nil, err
	}
	w.stop = append(w.stop, pg.Stop)
	if err := localsrv.WaitPostgres(ctx, pg.URL); err != nil {
		return nil, err
	}
	w.PGAdmin = pg.URL
	if o.pgDelay > 0 {
		u, err := url.Parse(pg.URL)
		if err != nil {
			return nil, err
		}
		px, err := faultproxy.New(u.Host)
		if err != nil {
			return nil, err
		}
		w.stop = append(w.stop, func() { _ = px.Close() })
		px.SetDelay(o.pgDelay)
		status("PostgreSQL behind the fault proxy at %s, %s one-way delay per chunk", px.Addr(), o.pgDelay)
		direct := u.Host
		w.viaProxy = func(s string) string { return strings.Replace(s, "@"+direct+"/", "@"+px.Addr()+"/", 1) }
	}
	if w.DBURL, err = localsrv.CreateDatabase(ctx, pg.URL, "softatm"); err != nil {
		return nil, err
	}
	status("starting private Redis")
	rs, err := localsrv.StartRedis(ctx, filepath.Join(dir, "redis"), localsrv.RedisOptions{})
	if err != nil {
		return nil, err
	}
	w.stop = append(w.stop, rs.Stop)
	w.Redis = rs.URL
	status("migrating and loading bench data (%d post offices, %d banks)", o.postOffices, o.banks)
	if _, err := switchschema.Migrate(ctx, w.DBURL); err != nil {
		return nil, err
	}
	if err := w.loadBenchData(ctx, o); err != nil {
		return nil, fmt.Errorf("bench data: %w", err)
	}

	var accounts []banksim.Account
	for _, b := range w.Banks {
		for _, a := range b.Accounts {
			accounts = append(accounts, banksim.Account{Number: a, Bank: b.Code, Holder: "BENCH CITIZEN",
				Phone: "0900005611", Balance: benchBalance, DailyLimit: 0})
		}
	}
	w.Sim = banksim.New(accounts, banksim.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	bankAddr, err := w.Sim.Listen("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w.stop = append(w.stop, func() { _ = w.Sim.Close() })

	bin := o.softatm
	if bin == "" {
		bin = filepath.Join(dir, "softatm")
		status("building softatm")
		b := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/softatm/softatm/cmd/softatm")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return nil, fmt.Errorf("building softatm (or pass -softatm): %w", err)
		}
	}
	port, err := localsrv.FreePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(os.TempDir(), "softatm-bench-serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "-listen", listen, "-bank", bankAddr.String(),
		"-db-conns", strconv.Itoa(o.dbConns), "-account-daily-max", strconv.FormatInt(o.accountDailyMax, 10)}
	if o.ledgerBatch > 0 {
		args = append(args, "-ledger-batch", strconv.Itoa(o.ledgerBatch), "-ledger-batch-wait", o.ledgerBatchWait.String())
	}
	admin := o.admin
	if admin == "" {
		p, err := localsrv.FreePort()
		if err != nil {
			return nil, err
		}
		admin = "127.0.0.1:" + strconv.Itoa(p)
	}
	args = append(args, "-admin-listen", admin)
	cmd := exec.Command(bin, args...)
	switchDB := w.DBURL
	if w.viaProxy != nil {
		switchDB = w.viaProxy(w.DBURL)
	}
	cmd.Env = append(os.Environ(), "DATABASE_URL="+switchDB, "REDIS_URL="+w.Redis, "SOFTATM_SECRET="+benchSwitchSecret)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	status("starting %s %v (log: %s)", bin, args, logPath)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w.SwitchPID = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	w.stop = append(w.stop, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	w.URL, w.AdminURL = "http://"+listen, "http://"+admin
	if err := localsrv.WaitHTTP(ctx, w.URL+"/readyz", serveStartMax, exited); err != nil {
		return nil, fmt.Errorf("softatm serve did not become ready (see %s): %w", logPath, err)
	}
	ok = true
	return w, nil
}

// benchSwitchSecret is the -secret of the bench's switch; the bench
// clients' secret hashes are keyed from it, so both must use the same.
var benchSwitchSecret = uuid.NewString()

// loadBenchData creates the bench banks (with app clients and receivables),
// post offices with huge tills and no daily limit, one kiosk and one teller
// per client, the switch's own accounts and a signing key. It mirrors
// `softatm admin load-demo` but with bench-sized money.
func (w *world) loadBenchData(ctx context.Context, o opts) error {
	pool, err := pgxpool.New(ctx, w.DBURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	l := ledger.New(pool)
	defer l.Close()
	a := auth.New(pool, auth.WithBcryptCost(benchBcryptCost), auth.WithClientSecretKey([]byte(benchSwitchSecret)))
	for _, acc := range []string{ledger.AccountInFlight, ledger.AccountFees, ledger.AccountSettlement} {
		if err := l.EnsureAccount(ctx, acc, benchCurrency, 0); err != nil {
			return err
		}
	}
	nBanks, nPOs := o.banks, o.postOffices
	if o.hot {
		nBanks, nPOs = 1, 1
	}
	for i := range nBanks {
		b := benchBank{Code: fmt.Sprintf("BK%d", i+1), ClientID: fmt.Sprintf("bench-app-%d", i+1),
			Secret: fmt.Sprintf("bench-secret-%04d", i+1)}
		// Accounts are 97<bank><12 digits>: the bank owns its 4-digit prefix.
		if _, err := pool.Exec(ctx, `INSERT INTO banks (code, name, fee_amount, account_ranges) VALUES ($1, $2, $3, $4)`,
			b.Code, "Bench Bank "+strconv.Itoa(i+1), o.fee, []string{fmt.Sprintf("97%02d", i+1)}); err != nil {
			return err
		}
		if err := l.EnsureAccount(ctx, ledger.ReceivableCode(b.Code), benchCurrency, 0); err != nil {
			return err
		}
		if err := a.CreateBankClient(ctx, b.ClientID, b.Code, b.Secret); err != nil {
			return err
		}
		for j := range o.accountsPerBank {
			b.Accounts = append(b.Accounts, fmt.Sprintf("97%02d%012d", i+1, j+1))
		}
		w.Banks = append(w.Banks, b)
	}
	for i := range nPOs {
		po := fmt.Sprintf("BP-%03d", i+1)
		if _, err := pool.Exec(ctx, `INSERT INTO post_offices (code, name, location, daily_limit) VALUES ($1, $2, 'Bench', 0)`,
			po, "Bench PO "+strconv.Itoa(i+1)); err != nil {
			return err
		}
		if err := l.EnsureAccount(ctx, ledger.TillCode(po), benchCurrency, ledger.FlagCreditsMustNotExceedDebits); err != nil {
			return err
		}
		if err := l.Replenish(ctx, po, benchTillCash, benchCurrency, uuid.New()); err != nil {
			return err
		}
	}
	tellers := o.clients
	if o.curve {
		tellers = max(tellers, o.curveClients)
	}
	for i := range tellers {
		po := fmt.Sprintf("BP-%03d", i%nPOs+1)
		kiosk := fmt.Sprintf("KB%06d", i+1)
		if _, err := pool.Exec(ctx, `INSERT INTO kiosks (id, post_office) VALUES ($1, $2)`, kiosk, po); err != nil {
			return err
		}
		t := benchTeller{Username: fmt.Sprintf("bench%04d", i+1), Password: benchPassword, PostOffice: po}
		if _, err := a.CreateUser(ctx, t.Username, t.Password, auth.RoleTeller, po, kiosk); err != nil {
			return err
		}
		w.Tellers = append(w.Tellers, t)
	}
	now := time.Now()
	_, err = code.Rotate(ctx, code.NewPGKeyStore(pool), "KBENCH01", now)
	if err != nil && softatm.ErrorCode(err) != softatm.EConflict {
		return err
	}
	return nil
}

// dbCounters are the server's counts that a run's deltas are made of.
type dbCounters struct {
	xids      int64 // next transaction id: write transactions started so far
	rollbacks int64 // transactions rolled back in this database (pg_stat_database)
	// updates of the withdrawals table, and the HOT ones among them
	// (pg_stat_user_tables): a HOT update writes no index entry.
	updates, hotUpdates int64
}

// readCounters reads dbCounters. Only transactions that write take an xid,
// so the xid delta over a run counts write transactions, re-runs included.
// The rollback count lags by up to a second (statistics are flushed, not
// streamed).
func readCounters(ctx context.Context, dbURL string) (dbCounters, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return dbCounters{}, err
	}
	defer conn.Close(ctx)
	var c dbCounters
	err = conn.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
		(SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()),
		COALESCE((SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'withdrawals'), 0),
		COALESCE((SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'withdrawals'), 0)`).
		Scan(&c.xids, &c.rollbacks, &c.updates, &c.hotUpdates)
	return c, err
}

// serverFacts reads the PostgreSQL version and fsync setting.
func serverFacts(ctx context.Context, dbURL string) (version, fsync, syncCommit string) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "?", "?", "?"
	}
	defer conn.Close(ctx)
	_ = conn.QueryRow(ctx, `SHOW server_version`).Scan(&version)
	_ = conn.QueryRow(ctx, `SHOW fsync`).Scan(&fsync)
	_ = conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&syncCommit)
	return
}
