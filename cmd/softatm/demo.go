package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/switch/code"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// runDemo is `make run`: private PostgreSQL and Redis (unless DATABASE_URL /
// REDIS_URL are set), migrations, demo fixtures, the bank simulator and the
// switch, each its own process, and a page of where to look. Ctrl-C stops
// everything it started; the data stays in -dir for the next run.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dir := fs.String("dir", ".var", "where private servers keep their data")
	listen := fs.String("listen", "127.0.0.1:8080", "switch HTTP address (a free port is used if it is taken)")
	adminListen := fs.String("admin-listen", defaultAdminListen, "switch admin address: metrics, pprof (a free port is used if it is taken)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	status := func(format string, a ...any) { fmt.Printf("==> "+format+"\n", a...) }

	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		status("starting private PostgreSQL in %s", filepath.Join(abs, "pg"))
		pg, err := localsrv.StartPostgres(ctx, filepath.Join(abs, "pg"), localsrv.PostgresOptions{Durable: true})
		if err != nil {
			return err
		}
		defer pg.Stop()
		if err := localsrv.WaitPostgres(ctx, pg.URL); err != nil {
			return err
		}
		if dbURL, err = ensureDatabase(ctx, pg.URL, "softatm"); err != nil {
			return err
		}
	}
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		status("starting private Redis")
		rs, err := localsrv.StartRedis(ctx, filepath.Join(abs, "redis"), localsrv.RedisOptions{})
		if err != nil {
			return err
		}
		defer rs.Stop()
		redisURL = rs.URL
	}
	status("migrating")
	if _, err := switchschema.Migrate(ctx, dbURL); err != nil {
		return err
	}
	status("loading demo fixtures")
	pool, err := openPool(ctx, dbURL)
	if err != nil {
		return err
	}
	secret, err := demoSecret(abs)
	if err != nil {
		pool.Close()
		return err
	}
	a := newAdmin(pool, secret)
	d, err := fixtures.LoadDemo()
	if err == nil {
		err = a.loadDemo(ctx, d)
	}
	a.close()
	pool.Close()
	if err != nil {
		return fmt.Errorf("loading fixtures: %w", err)
	}
	keyFile, err := demoKeyFile(abs)
	if err != nil {
		return err
	}

	// One simulator process playing every demo bank, one port each, and
	// each bank's row pointed at its port: the switch keeps a link per
	// bank (no shared -bank link).
	controlPort, _ := localsrv.FreePort()
	controlAddr := "127.0.0.1:" + strconv.Itoa(controlPort)
	var banks []string
	links := map[string]string{}
	for _, b := range d.Banks {
		port, _ := localsrv.FreePort()
		links[b.Code] = "127.0.0.1:" + strconv.Itoa(port)
		banks = append(banks, b.Code+"="+links[b.Code])
	}
	if err := setDemoLinks(ctx, dbURL, links); err != nil {
		return err
	}
	*listen = freeOr(*listen)
	*adminListen = freeOr(*adminListen)
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL, "SOFTATM_SECRET="+secret,
		"SOFTATM_KEY_FILE="+keyFile)
	bankAddr := strings.Join(banks, ",")
	status("starting bank simulator: %s", bankAddr)
	sim, err := child(env, "banksim", "-banks", bankAddr, "-control", controlAddr)
	if err != nil {
		return err
	}
	defer stopChild(sim)
	status("starting switch on %s", *listen)
	sw, err := child(env, "serve", "-listen", *listen, "-admin-listen", *adminListen, "-bank", "", "-demo")
	if err != nil {
		return err
	}
	defer stopChild(sw)
	base := "http://" + *listen
	if err := localsrv.WaitHTTP(ctx, base+"/healthz", 30*time.Second, nil); err != nil {
		return fmt.Errorf("switch did not come up: %w", err)
	}

	fmt.Printf(`
softatm is running.

  Demo banking app   %[1]s/demo/app        pick an account and an amount, get a code
  Kiosk (teller)     %[1]s/kiosk           teller1 / teller1-demo (post office LS-001)
  Finance            %[1]s/finance         finance / finance-demo
  Bank API           %[1]s/v1/withdrawals  HTTP Basic mb-app:mb-demo-secret-0001, agr-app:agr-demo-secret-0001 or vcb-app:vcb-demo-secret-0001
  Health             %[1]s/readyz
  Metrics, pprof     %[6]s/metrics  %[6]s/debug/pprof/  (admin listener, loopback only)
  Bank simulators    ISO 8583 %[2]s; control API http://%[3]s/{MB,AGR,VCB}/accounts

  DATABASE_URL=%[4]s
  REDIS_URL=%[5]s
  SOFTATM_KEY_FILE=%[7]s  (seals the signing keys' private seeds; keep it with the data)

Press Ctrl-C to stop everything.
`, base, bankAddr, controlAddr, dbURL, redisURL, "http://"+*adminListen, keyFile)

	select {
	case <-ctx.Done():
	case <-exited(sw):
		return errors.New("the switch exited; see its log above")
	case <-exited(sim):
		return errors.New("the bank simulator exited; see its log above")
	}
	status("stopping")
	return nil
}

// setDemoLinks points each demo bank's row at its simulator's port.
func setDemoLinks(ctx context.Context, dbURL string, links map[string]string) error {
	pool, err := openPool(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	for code, addr := range links {
		if err := bankLink(ctx, pool, code, bankLinkFlags{link: addr}); err != nil {
			return err
		}
	}
	return nil
}

func ensureDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return localsrv.DatabaseURLWithName(adminURL, name), nil
	}
	return localsrv.CreateDatabase(ctx, adminURL, name)
}

// demoSecret keeps one numeric-code secret per demo directory, so codes
// issued before a restart still work after it.
func demoSecret(dir string) (string, error) {
	p := filepath.Join(dir, "secret")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return string(b), nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	s := hex.EncodeToString(b[:])
	return s, os.WriteFile(p, []byte(s), 0o600)
}

// demoKeyFile keeps one key-encryption key per demo directory (the signing
// keys' seeds are sealed with it, so it must outlive a restart) and returns
// its path.
func demoKeyFile(dir string) (string, error) {
	p := filepath.Join(dir, "signing.kek")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	text, err := code.NewKEKText()
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, text, 0o600)
}

// freeOr returns addr if it can be listened on now, else a free loopback
// address.
func freeOr(addr string) string {
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		return addr
	}
	p, _ := localsrv.FreePort()
	return "127.0.0.1:" + strconv.Itoa(p)
}

type childProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// child starts this binary with a subcommand; it dies with us.
func child(env []string, args ...string) (*childProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

func exited(c *childProc) <-chan struct{} { return c.done }

func stopChild(c *childProc) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
