package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/softatm/softatm/fixtures/hacluster"
	"github.com/softatm/softatm/fixtures/localsrv"
)

// Settings of `softatm demo-ha`.
const (
	// demoHAReadyTimeout bounds the wait for each switch's /healthz.
	demoHAReadyTimeout = 60 * time.Second
)

// runDemoHA is `make run-ha`: the highly available topology on this
// machine, from nothing — a pg_auto_failover monitor and two PostgreSQL
// nodes with synchronous replication, Redis with a replica and three
// Sentinels (fixtures/hacluster), the bank simulator, and two switch
// instances on them — and prints where everything is and which node is
// primary. Ctrl-C stops all of it. Each step runs through this binary's
// own commands (migrate, admin, banksim, serve), as an operator would.
func runDemoHA(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo-ha", flag.ContinueOnError)
	dir := fs.String("dir", ".var/ha", "where the cluster keeps its data (emptied first)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	status := func(format string, a ...any) { fmt.Printf("==> "+format+"\n", a...) }
	// A cluster is built from nothing each time: pg_autoctl's state of an
	// earlier run names ports that may be taken now.
	if err := os.RemoveAll(abs); err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	status("building the cluster in %s (pg_auto_failover monitor + 2 nodes, Redis + replica + 3 Sentinels)", abs)
	c, err := hacluster.Start(ctx, filepath.Join(abs, "cluster"), hacluster.Options{Durable: true,
		Log: func(f string, a ...any) { status(f, a...) }})
	if err != nil {
		return err
	}
	defer c.Stop()

	secretBytes := make([]byte, 32)
	if _, err := rand.Read(secretBytes); err != nil {
		return err
	}
	secret := hex.EncodeToString(secretBytes)
	env := append(os.Environ(), "DATABASE_URL="+c.DatabaseURL(), "SOFTATM_SECRET="+secret,
		"SOFTATM_REDIS_SENTINELS="+strings.Join(c.SentinelAddrs(), ","), "SOFTATM_REDIS_MASTER="+hacluster.MasterName)
	for _, step := range [][]string{{"migrate"}, {"admin", "load-demo"}} {
		status("softatm %s", strings.Join(step, " "))
		if err := runSelf(ctx, env, step...); err != nil {
			return err
		}
	}
	port := func() string { p, _ := localsrv.FreePort(); return "127.0.0.1:" + strconv.Itoa(p) }
	bankAddr, controlAddr := port(), port()
	status("starting bank simulator on %s", bankAddr)
	sim, err := child(env, "banksim", "-listen", bankAddr, "-control", controlAddr)
	if err != nil {
		return err
	}
	defer stopChild(sim)
	var switches []*childProc
	var lines []string
	for i, terminal := range []string{"SATMHA01", "SATMHA02"} {
		listen, admin := port(), port()
		status("starting switch %d (%s) on %s", i+1, terminal, listen)
		sw, err := child(env, "serve", "-listen", listen, "-admin-listen", admin, "-bank", bankAddr,
			"-terminal", terminal, "-demo")
		if err != nil {
			return err
		}
		defer stopChild(sw)
		switches = append(switches, sw)
		if err := localsrv.WaitHTTP(ctx, "http://"+listen+"/healthz", demoHAReadyTimeout, nil); err != nil {
			return fmt.Errorf("switch %d did not come up: %w", i+1, err)
		}
		lines = append(lines, fmt.Sprintf("  Switch %d (%s)   http://%s/demo/app  /kiosk  /finance  /readyz   metrics http://%s/metrics",
			i+1, terminal, listen, admin))
	}
	primary, err := c.Primary(ctx)
	if err != nil {
		return err
	}
	rp, err := c.RedisPrimary(ctx)
	if err != nil {
		return err
	}
	var nodes []string
	for _, n := range c.Nodes {
		role := "standby (synchronous)"
		if n == primary {
			role = "PRIMARY"
		}
		nodes = append(nodes, fmt.Sprintf("  %-6s 127.0.0.1:%d  %s  %s", n.Name, n.Port, role, n.PGData))
	}
	fmt.Printf(`
softatm is running highly available.

%s

  PostgreSQL (pg_auto_failover)
%s
  monitor  %s
  DATABASE_URL=%s
  state:   XDG_CONFIG_HOME=%[5]s/xdg/config XDG_DATA_HOME=%[5]s/xdg/data pg_autoctl show state --pgdata %[6]s
  switch over by hand: the same environment, pg_autoctl perform switchover --pgdata %[6]s
           (run pg_autoctl as the postgres user when root)

  Redis    primary %s (Sentinels %s, master name %s)
  Bank simulator  ISO 8583 on %s, control API http://%s/accounts
  Teller: teller1 / teller1-demo   Finance: finance / finance-demo   Bank API: HTTP Basic mb-app:mb-demo-secret-0001

Press Ctrl-C to stop everything.
`, strings.Join(lines, "\n"), strings.Join(nodes, "\n"), c.MonitorURL(), c.DatabaseURL(), c.Dir, c.Monitor.PGData,
		rp.Addr(), strings.Join(c.SentinelAddrs(), ","), hacluster.MasterName, bankAddr, controlAddr)

	select {
	case <-ctx.Done():
	case <-switches[0].done:
		return errors.New("switch 1 exited; see its log above")
	case <-switches[1].done:
		return errors.New("switch 2 exited; see its log above")
	case <-sim.done:
		return errors.New("the bank simulator exited; see its log above")
	}
	status("stopping")
	return nil
}

// runSelf runs this binary with args to its end.
func runSelf(ctx context.Context, env []string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("softatm %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
