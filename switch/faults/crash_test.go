package faults

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/softatm/softatm/iso/banksim"
	atmswitch "github.com/softatm/softatm/switch"
)

// banksim0220Delay slows advices so that a killed instance dies with some
// leased.
var banksim0220Delay = banksim.Fault{Kind: banksim.FaultDelay, DelayMs: 700}

// Scenario 3: kill -9 at each labelled crash point of the payout path
// (switch/crash.go), then restart without it: every hold ends captured or
// released and no code pays twice. Then a kill -9 with no crash point, at
// a random moment of a load.
func TestScenario3CrashPoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	p := e.serve("SATMF301", serveOpts{})
	tl := e.loginAll(p, 2)[0]
	points := []string{atmswitch.CrashAfterAuthorize, atmswitch.CrashBeforeCommit, atmswitch.CrashAfterCommit,
		atmswitch.CrashAfterSend, atmswitch.CrashBeforeReversal}
	for iter := range soakScale() {
		for _, point := range points {
			e.crashAt(p, tl, point, iter)
			e.rounds.Add(1)
		}
		// No crash point: a power cut at a random moment of a load.
		stop := make(chan struct{})
		wait := e.load(func() []*proc { return []*proc{p} }, e.loginAll(p, 4), 6, stop)
		time.Sleep(e.rnd.Duration(500*time.Millisecond, 2500*time.Millisecond))
		p.kill()
		e.fault("kill -9 during a load")
		time.Sleep(e.rnd.Duration(0, time.Second))
		p.start(nil)
		time.Sleep(500 * time.Millisecond)
		close(stop)
		t.Logf("load around the kill: %d payouts confirmed", wait())
		e.settle(p)
		e.rounds.Add(1)
	}
	e.verify()
}

// crashAt runs one withdrawal into point on a process started with
// SOFTATM_CRASH_AT, restarts it without, and checks where it ended.
func (e *env) crashAt(p *proc, tl *teller, point string, iter int) {
	t := e.t
	t.Helper()
	// Codes the crashing process will need, issued before it starts.
	var c created
	if point != atmswitch.CrashAfterAuthorize {
		c = e.mustCreate(p)
	}
	p.kill()
	p.start([]string{"SOFTATM_CRASH_AT=" + point})
	want := "" // the state the withdrawal must end in
	viaReversal := e.rnd.IntN(2) == 0
	switch point {
	case atmswitch.CrashAfterAuthorize:
		// The bank approved; the process dies before recording it.
		cc, r := e.create(p, "", e.createBody(e.amount()))
		if r.err == nil {
			e.violation("%s: create answered %v", point, r)
		}
		c = cc
		want = "failed"
	case atmswitch.CrashBeforeCommit, atmswitch.CrashAfterCommit:
		if r := tl.scan(p, c.QR); r.status != http.StatusOK {
			t.Fatalf("%s: scan: %v", point, r)
		}
		if r := tl.confirm(p, c.ID, ""); r.err == nil {
			e.violation("%s: confirm answered %v", point, r)
		}
		want = "completed"
	case atmswitch.CrashAfterSend:
		// The process dies with the bank's answer unrecorded: an advice
		// or a reversal, by the seed. The bank answers slowly, so that the
		// process answers the teller or the bank's app before it dies.
		e.sim.SetMTIFault("0220", banksim0220Delay)
		e.sim.SetMTIFault("0420", banksim0220Delay)
		defer e.sim.ClearFaults()
		if viaReversal {
			answeredOrDied(t, point, "cancel", e.cancel(p, "MB", c.ID))
			want = "cancelled"
		} else {
			_, r := tl.pay(p, c)
			answeredOrDied(t, point, "pay", r)
			want = "completed"
		}
	case atmswitch.CrashBeforeReversal:
		answeredOrDied(t, point, "cancel", e.cancel(p, "MB", c.ID))
		want = "cancelled"
	}
	if !p.waitExit(crashWait) {
		e.violation("%s: the process never reached its crash point", point)
	}
	e.fault("kill -9 at " + point)
	p.start(nil)

	switch point {
	case atmswitch.CrashBeforeCommit:
		// Nothing was recorded. The teller tries again (the claim is still
		// theirs unless it lapsed meanwhile), or the citizen leaves.
		if e.rnd.IntN(2) == 0 {
			r := tl.confirm(p, c.ID, "")
			switch {
			case r.status == http.StatusOK:
			case r.status == http.StatusConflict && r.code() == "conflict":
				want = "cancelled" // the claim lapsed; settle cancels it
			default:
				e.violation("%s: confirm after restart: %v", point, r)
			}
		} else {
			// The citizen left: the teller gives the claim up.
			r := do(tl.c, "POST", p.url+"/v1/teller/release", tl.headers(""), map[string]any{"withdrawal_id": c.ID})
			if r.status != http.StatusOK && !(r.status == http.StatusConflict && r.code() == "conflict") {
				e.violation("%s: release after restart: %v", point, r)
			}
			want = "cancelled"
		}
	case atmswitch.CrashAfterCommit:
		// The payout is recorded though the kiosk never heard: a retry
		// must say so, not pay again.
		if r := tl.confirm(p, c.ID, ""); r.status != http.StatusConflict || r.code() != "code_already_used" {
			e.violation("%s: confirm after restart: %v", point, r)
		}
	}
	e.settle(p)
	if c.ID.String() != "00000000-0000-0000-0000-000000000000" {
		if st, posts := e.row(c.ID); st != want || (posts == 1) != (want == "completed") {
			e.violation("iteration %d, %s: withdrawal ended %s with %d postings, want %s", iter, point, st, posts, want)
		}
	}
}

// answeredOrDied accepts r as the answer to a request that sets the
// outbox going towards a crash point: 200, or no answer at all when the
// outbox reached the point before the handler wrote its response (the
// process is checked to have died, and the end state, after the restart).
func answeredOrDied(t *testing.T, point, what string, r reply) {
	t.Helper()
	if r.status != http.StatusOK && r.err == nil {
		t.Fatalf("%s: %s: %v", point, what, r)
	}
}

// Scenario 8: two instances share the database and Redis; one is killed
// mid-run, with advices leased and claims open. The survivor finishes the
// work: its outbox sends what the dead one had leased once the leases run
// out, and its sweeper frees the dead one's claims.
func TestScenario8Failover(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	a := e.serve("SATMF801", serveOpts{})
	b := e.serve("SATMF802", serveOpts{})
	tellers := e.loginAll(a, 8)
	for range soakScale() {
		// Slow advices, so the victim dies holding leases.
		e.sim.SetMTIFault("0220", banksim0220Delay)
		var mu sync.Mutex
		live := []*proc{a, b}
		procs := func() []*proc { mu.Lock(); defer mu.Unlock(); return append([]*proc(nil), live...) }
		stop := make(chan struct{})
		wait := e.load(procs, tellers, 8, stop)
		time.Sleep(e.rnd.Duration(1500*time.Millisecond, 3*time.Second))
		victim := []*proc{a, b}[e.rnd.IntN(2)]
		survivor := a
		if victim == a {
			survivor = b
		}
		mu.Lock()
		live = []*proc{survivor}
		mu.Unlock()
		victim.kill()
		e.fault("kill -9 of " + victim.name)
		time.Sleep(e.rnd.Duration(time.Second, 2*time.Second))
		close(stop)
		t.Logf("payouts confirmed: %d", wait())
		e.sim.ClearFaults()
		e.settle(survivor)
		e.rounds.Add(1)
		victim.start(nil)
	}
	e.verify()
}
