package faults

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/softatm/softatm/fixtures/faultproxy"
	"github.com/softatm/softatm/iso/banksim"
)

// Scenario 4: the bank misbehaves. A 0100 with no reply, a reply after the
// deadline, a connection reset in the middle of the request or of the
// reply, a hang-up on receipt: no code is issued and a reversal follows.
// Duplicate replies and unanswered advices change nothing. The bank down
// for a while: confirms of codes already issued still pay (the advice
// waits in the outbox), new requests are refused, and once the bank is
// back every queue drains and nothing is dropped. A 0110 that answers with
// another amount, RRN, account, currency or processing code issues no code:
// the request is reversed and kept as an exception.
func TestScenario4BankFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	p := e.serve("SATMF401", serveOpts{args: []string{"-auth-timeout", "1s"}})
	tellers := e.loginAll(p, 8)
	lies := 0 // 0110s that did not match their 0100
	outage := 10 * time.Second
	if soakScale() > 1 {
		outage = 20 * time.Second
	}
	for round := range soakScale() {
		for _, fc := range []struct {
			name string
			set  func()
		}{
			{"no reply to the 0100", func() { e.sim.SetMTIFault("0100", banksim.Fault{Kind: banksim.FaultDrop}) }},
			{"0110 after the deadline", func() {
				e.sim.SetMTIFault("0100", banksim.Fault{Kind: banksim.FaultLate, DelayMs: 1500})
			}},
			{"hang-up on receipt of the 0100", func() { e.sim.SetMTIFault("0100", banksim.Fault{Kind: banksim.FaultDisconnect}) }},
			{"connection reset mid-request", func() { e.bank.CutAfter(faultproxy.Upstream, int64(3+e.rnd.IntN(60))) }},
			{"connection reset mid-reply", func() { e.bank.CutAfter(faultproxy.Downstream, int64(3+e.rnd.IntN(60))) }},
		} {
			p.waitReady() // the link is back from the last fault
			fc.set()
			e.fault(fc.name)
			c, r := e.create(p, "", e.createBody(e.amount()))
			if r.err != nil {
				e.violation("%s: create: %v", fc.name, r)
			} else if r.status == http.StatusCreated {
				e.violation("%s: a code was issued without a usable approval: %s", fc.name, c.ID)
			} else if r.status != http.StatusServiceUnavailable || r.code() != "bank_unavailable" {
				e.violation("%s: create answered %v", fc.name, r)
			}
			e.sim.ClearFaults()
			e.bank.CutAfter(faultproxy.Upstream, -1)
			e.bank.CutAfter(faultproxy.Downstream, -1)
		}
		p.waitReady()

		// The bank approves something else than was asked: no code, a
		// reversal for whatever it holds, an exception for finance.
		for _, lie := range []string{banksim.FaultReplyAmount, banksim.FaultReplyRRN, banksim.FaultReplyAccount,
			banksim.FaultReplyCurrency, banksim.FaultReplyProc} {
			e.sim.SetFault("", banksim.Fault{Kind: lie})
			e.fault("0110 lies: " + lie)
			c, r := e.create(p, "", e.createBody(e.amount()))
			e.sim.ClearFaults()
			if r.status == http.StatusCreated {
				e.violation("%s: a code was issued on a reply that does not match: %s", lie, c.ID)
			} else if r.status != http.StatusBadGateway || r.code() != "bank_reply_invalid" {
				e.violation("%s: create answered %v", lie, r)
			}
			lies++
		}

		// Duplicate replies to everything, and advices that go unanswered
		// for a while, under a load.
		e.sim.SetFault("", banksim.Fault{Kind: banksim.FaultDuplicate})
		e.sim.SetMTIFault("0220", banksim.Fault{Kind: banksim.FaultDrop})
		e.fault("every reply sent twice; 0220s unanswered")
		stop := make(chan struct{})
		wait := e.load(func() []*proc { return []*proc{p} }, tellers, 6, stop)
		time.Sleep(e.rnd.Duration(time.Second, 2*time.Second))
		close(stop)
		t.Logf("round %d: %d payouts under duplicate replies", round, wait())
		e.sim.ClearFaults()

		// The bank goes away: codes issued before still pay.
		var ready []created
		for range 6 {
			ready = append(ready, e.mustCreate(p))
		}
		if err := e.bank.Refuse(); err != nil {
			t.Fatal(err)
		}
		e.bank.ResetAll()
		e.fault("bank unreachable for " + outage.String())
		var wg sync.WaitGroup
		paidDuringOutage := 0
		var mu sync.Mutex
		for i, c := range ready {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%3 == 2 {
					if r := e.cancel(p, "MB", c.ID); r.status != http.StatusOK {
						e.violation("cancel while the bank is down: %v", r)
					}
					return
				}
				if _, r := tellers[i].pay(p, c); r.status == http.StatusOK {
					mu.Lock()
					paidDuringOutage++
					mu.Unlock()
				} else {
					e.violation("pay while the bank is down: %v", r)
				}
			}()
		}
		// New requests are refused cleanly.
		for range 3 {
			if _, r := e.create(p, "", e.createBody(e.amount())); r.err != nil || r.status == http.StatusCreated {
				e.violation("create while the bank is down: %v", r)
			}
		}
		wg.Wait()
		time.Sleep(outage)
		var queued int
		_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE state = 'pending'`).Scan(&queued)
		t.Logf("round %d: %d paid while the bank was down; %d messages queued", round, paidDuringOutage, queued)
		if queued == 0 {
			e.violation("nothing queued while the bank was down")
		}
		if err := e.bank.Pass(); err != nil {
			t.Fatal(err)
		}
		e.settle(p)
		e.rounds.Add(1)
	}
	e.verify()
	// Every lie: a failed request, its reversal acknowledged, one exception.
	var failedReversed, exceptions int
	if err := e.pool.QueryRow(context.Background(), `SELECT
			(SELECT COUNT(*) FROM outbox r JOIN outbox x ON x.withdrawal_id = r.withdrawal_id
			  JOIN withdrawals w ON w.id = r.withdrawal_id
			 WHERE x.kind = 'reply_mismatch' AND r.kind = 'reversal' AND r.state = 'done' AND w.state = 'failed'),
			(SELECT COUNT(*) FROM outbox WHERE kind = 'reply_mismatch')`).Scan(&failedReversed, &exceptions); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d mismatched replies: %d reversed, %d exceptions", lies, failedReversed, exceptions)
	if failedReversed != lies || exceptions != lies {
		e.violation("%d mismatched replies, but %d failed and reversed and %d exceptions", lies, failedReversed, exceptions)
	}
}
