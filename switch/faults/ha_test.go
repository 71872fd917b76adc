package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/fixtures/hacluster"
)

// Settings of the HA scenario.
const (
	// haLoadBefore is how long withdrawals run before each kill.
	haLoadBefore = 3 * time.Second
	// haRecoverMax bounds the wait for the first withdrawal completed after
	// a kill (a PostgreSQL failover measured 7–11 s, Redis 2.5 s).
	haRecoverMax = 90 * time.Second
	// haLoadAfter is how long withdrawals go on after the first one
	// completed after a kill.
	haLoadAfter = 2 * time.Second
	// haWorkers is the number of load goroutines.
	haWorkers = 6
)

// Scenario HA: lose a server, lose nothing. The switch runs as two
// instances on a pg_auto_failover cluster (a monitor, a primary and a
// synchronous standby, found through a multi-host URL) and on Redis with
// a replica and three Sentinels, all built from nothing. While withdrawals
// run, kill -9: the PostgreSQL primary (its keeper with it: the machine is
// gone); then the Redis primary; then one of the two switch instances.
// After each: every withdrawal is completed or cleanly reversed, none is
// paid twice, `softatm admin check` holds on the new primary, and the time
// from the kill to the first withdrawal created and paid after it is
// printed. While no primary is reachable, callers are told to try again
// (503) and never refused.
func TestScenarioHA(t *testing.T) {
	c := hacluster.MustStart(t, hacluster.Options{})
	e := newHAEnv(t, c)
	sentinelArgs := []string{"-redis", "", "-redis-sentinels", strings.Join(c.SentinelAddrs(), ","),
		"-redis-master", hacluster.MasterName}
	p1 := e.serve("SATMHA01", serveOpts{args: sentinelArgs})
	p2 := e.serve("SATMHA02", serveOpts{args: sentinelArgs})
	tellers := e.loginAll(p1, 6)
	probe := e.loginAll(p1, 1)[0]
	alive := func() []*proc {
		var out []*proc
		for _, p := range []*proc{p1, p2} {
			if p.alive() {
				out = append(out, p)
			}
		}
		return out
	}
	ctx := context.Background()

	for _, k := range []struct {
		what string
		kill func() (rejoin func())
		// notReady: /readyz must report the database not up meanwhile.
		notReady bool
	}{
		{"kill -9 of the PostgreSQL primary", func() func() {
			n, err := c.Primary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n.Kill()
			return func() {
				if err := n.Rejoin(); err != nil {
					t.Fatal(err)
				}
			}
		}, true},
		{"kill -9 of the Redis primary", func() func() {
			r, err := c.KillRedisPrimary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := c.WaitHealthy(ctx); err != nil {
					t.Fatal(err)
				}
				if err := c.RejoinRedis(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
		}, false},
		{"kill -9 of one of two switch instances", func() func() {
			p2.kill()
			return func() {}
		}, false},
	} {
		stop := make(chan struct{})
		wait := e.load(alive, tellers, haWorkers, stop)
		time.Sleep(haLoadBefore)
		e.fault(k.what)
		killed := time.Now()
		rejoin := k.kill()
		if k.notReady {
			e.readyzSaysDatabaseDown(p1)
		}
		took, answers := e.firstPayout(alive, probe, killed)
		t.Logf("%s: first withdrawal created and paid %s after the kill; answers meanwhile: %v",
			k.what, took.Round(time.Millisecond), answers)
		fmt.Printf("HA: %s: first completed withdrawal %s after the kill\n", k.what, took.Round(time.Millisecond))
		time.Sleep(haLoadAfter)
		close(stop)
		t.Logf("%s: %d payouts confirmed by the load", k.what, wait())
		e.settle(alive()[0])
		e.verify()
		rejoin()
		if err := c.WaitHealthy(ctx); err != nil {
			t.Fatal(err)
		}
		e.rounds.Add(1)
	}
}

// firstPayout creates and pays withdrawals through the live instances,
// one after another, until one is paid; it returns the time from killed
// to that payout and how often each answer came meanwhile. An answer
// that refuses (4xx other than a lost claim race) or a 500 is a
// violation: while a server is lost the switch may only say "try again".
func (e *env) firstPayout(alive func() []*proc, tl *teller, killed time.Time) (time.Duration, map[string]int) {
	e.t.Helper()
	answers := map[string]int{}
	note := func(step string, r reply) {
		key := step + " transport error"
		if r.err == nil {
			key = fmt.Sprintf("%s %d %s", step, r.status, r.code())
		}
		answers[key]++
		if r.err == nil && (r.status == http.StatusInternalServerError ||
			(r.status >= 400 && r.status < 500 && r.status != http.StatusConflict)) {
			e.violation("%s answered %v while a server was lost", step, r)
		}
	}
	deadline := killed.Add(haRecoverMax)
	for time.Now().Before(deadline) {
		ps := alive()
		p := ps[e.rnd.IntN(len(ps))]
		c, r, retryAfter := e.createRetryAfter(p)
		if r.err == nil && r.status == http.StatusServiceUnavailable && retryAfter == "" {
			e.violation("create answered %v without Retry-After", r)
		}
		if r.err != nil || r.status != http.StatusCreated {
			note("create", r)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// The code is issued: pay it, retrying as a teller would (the
		// same code, scanned again) until it is paid or refused.
		for time.Now().Before(deadline) {
			scanned, r := tl.pay(p, c)
			if r.err == nil && r.status == http.StatusOK {
				return time.Since(killed), answers
			}
			if scanned {
				note("confirm", r)
			} else {
				note("scan", r)
			}
			if r.err == nil && r.status == http.StatusConflict && r.code() != "code_claimed_elsewhere" {
				break // paid or ended by someone else; try a new code
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	e.violation("no withdrawal paid %s after the kill (answers %v)", haRecoverMax, answers)
	return haRecoverMax, answers
}

// haReadyzWaitMax bounds the wait for /readyz to notice a lost primary.
const haReadyzWaitMax = 5 * time.Second

// readyzSaysDatabaseDown polls p's /readyz until it answers 503 with the
// database not up ("no primary", or "down" when the ping ran out of time).
func (e *env) readyzSaysDatabaseDown(p *proc) {
	e.t.Helper()
	deadline := time.Now().Add(haReadyzWaitMax)
	c := &http.Client{Timeout: 3 * time.Second}
	for {
		resp, err := c.Get(p.url + "/readyz")
		if err == nil {
			var st map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && st["database"] != "up" {
				e.t.Logf("/readyz during the failover: %d %v", resp.StatusCode, st)
				return
			}
		}
		if time.Now().After(deadline) {
			e.violation("/readyz still says the database is up %s after its primary was killed", haReadyzWaitMax)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// createRetryAfter is e.create through p with a fresh key, also returning
// the answer's Retry-After header.
func (e *env) createRetryAfter(p *proc) (created, reply, string) {
	b, _ := json.Marshal(e.createBody(e.amount()))
	req, err := http.NewRequest("POST", p.url+"/v1/withdrawals", bytes.NewReader(b))
	if err != nil {
		return created{}, reply{err: err}, ""
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.bankHeaders("MB", uuid.NewString()) {
		req.Header.Set(k, v)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		return created{}, reply{err: err}, ""
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, body: raw, err: err}
	var c created
	if r.err == nil && r.status == http.StatusCreated {
		_ = json.Unmarshal(raw, &c)
	}
	return c, r, resp.Header.Get("Retry-After")
}

// newHAEnv is newEnv on the cluster c: the database is c's (through its
// multi-host URL), Redis is reached through the Sentinels.
func newHAEnv(t *testing.T, c *hacluster.Cluster) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, rnd: newSeed(t), prefix: "softatm:"}
	var err error
	if e.demo, err = fixtures.LoadDemo(); err != nil {
		t.Fatal(err)
	}
	e.dbURL = c.DatabaseURL()
	e.loadDatabase(ctx)
	e.startBank()
	if e.logDir, err = os.MkdirTemp("", "softatm-faults-log-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.stopAll()
		if t.Failed() {
			e.dumpLogs()
		}
		os.RemoveAll(e.logDir)
		e.recordSoak()
	})
	return e
}
