package faults

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm/fixtures/faultproxy"
	"github.com/softatm/softatm/iso/banksim"
	atmswitch "github.com/softatm/softatm/switch"
)

// depositArgs shorten the deposit's deadlines so that a scenario's credits
// without an answer are failed and reversed within a settle.
var depositArgs = []string{"-credit-timeout", "1s", "-crediting-max", "2s"}

// createDeposit asks p for a deposit code as MB's app.
func (e *env) createDeposit(p *proc) created {
	e.t.Helper()
	body := map[string]any{"account": mbAccounts[e.rnd.IntN(len(mbAccounts))], "amount": e.amount(), "currency": "VND",
		"holder_name": "Nguyen Van An", "phone_last4": "5611"}
	r := do(plainClient, "POST", p.url+"/v1/deposits", e.bankHeaders("MB", uuid.NewString()), body)
	var c created
	if r.err != nil || r.status != http.StatusCreated || json.Unmarshal(r.body, &c) != nil {
		e.t.Fatalf("create deposit: %v", r)
	}
	return c
}

func (tl *teller) confirmDeposit(p *proc, id uuid.UUID, key string) reply {
	return do(tl.c, "POST", p.url+"/v1/teller/deposits/confirm", tl.headers(key), map[string]any{"deposit_id": id, "cash_counted": true})
}

// takeDeposit scans a deposit code at the teller's counter, or fails the
// test.
func (e *env) takeDeposit(p *proc, tl *teller, c created) {
	e.t.Helper()
	if r := tl.scan(p, c.QR); r.status != http.StatusOK {
		e.t.Fatalf("scan deposit: %v", r)
	}
}

// handedBack accepts the answer to a confirm whose credit the bank did not
// give in time: the teller is told to hand the cash back.
func (e *env) handedBack(what string, r reply) {
	if r.err != nil || r.status != http.StatusPaymentRequired || r.code() != "deposit_not_taken" {
		e.violation("%s: confirm answered %v, want deposit_not_taken", what, r)
	}
}

// settleDeposits brings every deposit to rest through p: codes no one
// holds are cancelled, claims lapse and credits without an answer are
// failed by p's sweeper, and p's outbox sends their reversals.
func (e *env) settleDeposits(p *proc) {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(settleTimeout)
	for {
		var open, pending int
		rows, err := e.pool.Query(ctx, `SELECT id, state FROM withdrawals WHERE kind = 'deposit' AND state IN ('deposit_issued','at_counter','crediting')`)
		if err != nil {
			e.t.Fatal(err)
		}
		var issued []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			var st string
			if err := rows.Scan(&id, &st); err != nil {
				e.t.Fatal(err)
			}
			open++
			if st == "deposit_issued" {
				issued = append(issued, id)
			}
		}
		rows.Close()
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE state = 'pending'`).Scan(&pending); err != nil {
			e.t.Fatal(err)
		}
		if open == 0 && pending == 0 {
			return
		}
		for _, id := range issued {
			e.cancel(p, "MB", id)
		}
		if time.Now().After(deadline) {
			e.violation("deposits not settled after %s: %d open, %d outbox messages pending", settleTimeout, open, pending)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verifyDeposits compares every deposit with the bank's books: a deposit
// is credited in the ledger (one transfer) exactly when the bank kept its
// credit, for the same amount; every other deposit was never credited, or
// its credit was reversed; the bank kept no credit the switch does not
// know of.
func (e *env) verifyDeposits() map[string]int {
	e.t.Helper()
	type drow struct {
		id                      uuid.UUID
		state                   string
		amount, posts, reversal int64
	}
	rows, err := e.pool.Query(context.Background(), `SELECT w.id, w.rrn, w.state, w.amount,
		(SELECT count(*) FROM transfers t WHERE t.withdrawal_id = w.id),
		(SELECT count(*) FROM outbox o WHERE o.withdrawal_id = w.id AND o.kind = 'reversal' AND o.state = 'done')
		FROM withdrawals w WHERE w.kind = 'deposit'`)
	if err != nil {
		e.t.Fatal(err)
	}
	byRRN := map[string]*drow{}
	states := map[string]int{}
	for rows.Next() {
		d := &drow{}
		var rrn string
		if err := rows.Scan(&d.id, &rrn, &d.state, &d.amount, &d.posts, &d.reversal); err != nil {
			e.t.Fatal(err)
		}
		byRRN[rrn] = d
		states[d.state]++
		switch d.state {
		case "at_counter", "crediting":
			e.violation("deposit %s left %s", d.id, d.state)
		case "credit_failed":
			if d.reversal == 0 {
				e.violation("deposit %s failed without an answered reversal", d.id)
			}
		}
		if (d.state == "credited") != (d.posts == 1) || d.posts > 1 {
			e.violation("deposit %s is %s with %d transfers", d.id, d.state, d.posts)
		}
	}
	rows.Close()
	kept := map[string]banksim.Credit{}
	for _, c := range e.sim.Credits() {
		if c.State == banksim.CreditDone {
			kept[c.RRN] = c
		}
		if byRRN[c.RRN] == nil {
			e.violation("credit %s (RRN %s) %s at the bank for no deposit", c.ApprovalCode, c.RRN, c.State)
		}
	}
	for rrn, d := range byRRN {
		c, ok := kept[rrn]
		switch {
		case d.state == "credited" && !ok:
			e.violation("deposit %s credited by the switch, not kept by the bank", d.id)
		case d.state == "credited" && c.Amount != d.amount:
			e.violation("deposit %s of %d credited %d at the bank", d.id, d.amount, c.Amount)
		case d.state != "credited" && ok:
			e.violation("deposit %s is %s but the bank kept its credit %s", d.id, d.state, c.ApprovalCode)
		}
	}
	e.t.Logf("verified deposits: %v; %d credits kept at the bank", states, len(kept))
	return states
}

// Scenario 9: deposits under the faults of the withdrawal scenarios. The
// bank does not answer the 0200, answers after the deadline, hangs up, the
// connection is cut mid-request or mid-reply, the 0210 states another
// amount: each time the teller is told to hand the cash back, nothing is
// posted, and whatever the bank credited is reversed. Then kill -9 before
// the 0200 leaves and after the bank credited it, and before a deposit's
// reversal leaves: after the restart nothing is credited that the switch
// did not record. Redis flushed between scan and confirm changes nothing.
// Deposits that do go through are credited once, at the bank and in the
// ledger, and `softatm admin check` holds.
func TestScenario9Deposits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{privateRedis: true, dbProxy: true})
	p := e.serve("SATMF901", serveOpts{args: depositArgs})
	tl := e.loginAll(p, 1)[0]
	credited := 0
	for range soakScale() {
		for _, fc := range []struct {
			name string
			set  func()
		}{
			{"no reply to the 0200", func() { e.sim.SetMTIFault("0200", banksim.Fault{Kind: banksim.FaultDrop}) }},
			{"0210 after the deadline", func() {
				e.sim.SetMTIFault("0200", banksim.Fault{Kind: banksim.FaultLate, DelayMs: 1500})
			}},
			{"hang-up on receipt of the 0200", func() { e.sim.SetMTIFault("0200", banksim.Fault{Kind: banksim.FaultDisconnect}) }},
			{"connection reset mid-request", func() { e.bank.CutAfter(faultproxy.Upstream, int64(3+e.rnd.IntN(60))) }},
			{"connection reset mid-reply", func() { e.bank.CutAfter(faultproxy.Downstream, int64(3+e.rnd.IntN(60))) }},
			{"0210 states another amount", func() { e.sim.SetMTIFault("0200", banksim.Fault{Kind: banksim.FaultReplyAmount}) }},
		} {
			p.waitReady()
			c := e.createDeposit(p)
			e.takeDeposit(p, tl, c)
			fc.set()
			e.fault("deposit: " + fc.name)
			e.handedBack(fc.name, tl.confirmDeposit(p, c.ID, ""))
			e.sim.ClearFaults()
			e.bank.CutAfter(faultproxy.Upstream, -1)
			e.bank.CutAfter(faultproxy.Downstream, -1)
		}
		p.waitReady()

		// Redis flushed between the scan and the confirm.
		c := e.createDeposit(p)
		e.takeDeposit(p, tl, c)
		opt, _ := redis.ParseURL(e.redisSrv.URL)
		rc := redis.NewClient(opt)
		if err := rc.FlushAll(context.Background()).Err(); err != nil {
			t.Errorf("FLUSHALL: %v", err)
		}
		rc.Close()
		e.fault("deposit: Redis flushed")
		if r := tl.confirmDeposit(p, c.ID, ""); r.status != http.StatusOK {
			e.violation("confirm after a Redis flush: %v", r)
		} else {
			credited++
		}

		// PostgreSQL lost while the bank credits: the 0210 approves, and
		// neither the credit's commit nor the read-back can reach the
		// database. The switch cannot tell: the teller keeps the cash
		// apart (never "hand it back", which would pay the citizen twice
		// had the commit landed), and the same confirm sent again once
		// the database is back gets the answer the books give.
		c = e.createDeposit(p)
		e.takeDeposit(p, tl, c)
		e.sim.SetMTIFault("0200", banksim.Fault{Kind: banksim.FaultLate, DelayMs: 400})
		key := uuid.NewString()
		answer := make(chan reply, 1)
		go func() { answer <- tl.confirmDeposit(p, c.ID, key) }()
		time.Sleep(150 * time.Millisecond) // the deposit is crediting, its 0200 at the bank
		if err := e.dbPx.Refuse(); err != nil {
			t.Fatal(err)
		}
		e.dbPx.ResetAll()
		got := <-answer
		e.sim.ClearFaults()
		if err := e.dbPx.Pass(); err != nil {
			t.Fatal(err)
		}
		e.fault("deposit: PostgreSQL lost while the bank credits")
		if got.status != http.StatusServiceUnavailable || got.code() != "deposit_outcome_unknown" {
			e.violation("confirm with the database lost after the 0210: %v, want 503 deposit_outcome_unknown", got)
		}
		for deadline := time.Now().Add(settleTimeout); ; {
			got = tl.confirmDeposit(p, c.ID, key)
			// request_in_progress: the first confirm's idempotency record
			// could not be ended while the database was away; its lease
			// (15 s) ends it.
			wait := got.code() == "deposit_outcome_unknown" || got.code() == "database_unavailable" || got.code() == "request_in_progress"
			if !wait || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		switch st, _ := e.row(c.ID); {
		case st == "credited" && got.status == http.StatusOK:
			credited++
		case st == "credit_failed" && got.code() == "deposit_not_taken":
		default:
			e.violation("the same confirm again after the database came back: %v with the deposit %s", got, st)
		}
		e.settleDeposits(p)

		// kill -9 before the 0200 leaves, and after the bank credited it.
		for _, point := range []string{atmswitch.CrashDepositBeforeSend, atmswitch.CrashDepositAfter0210} {
			c := e.createDeposit(p)
			p.kill()
			p.start([]string{"SOFTATM_CRASH_AT=" + point})
			e.takeDeposit(p, tl, c)
			if r := tl.confirmDeposit(p, c.ID, ""); r.err == nil {
				e.violation("%s: confirm answered %v", point, r)
			}
			if !p.waitExit(crashWait) {
				e.violation("%s: the process never reached its crash point", point)
			}
			e.fault("kill -9 at " + point)
			p.start(nil)
			// The teller got no answer: a retry tells them to wait or hand
			// the cash back, never credits twice.
			if r := tl.confirmDeposit(p, c.ID, ""); r.status == http.StatusOK {
				e.violation("%s: a confirm after the restart credited the deposit", point)
			}
			e.settleDeposits(p)
			if st, posts := e.row(c.ID); st != "credit_failed" || posts != 0 {
				e.violation("%s: deposit ended %s", point, st)
			}
		}

		// kill -9 once the credit is recorded, before the receipt is
		// answered: a retry says it is credited (the receipt is reprinted
		// from My day), never credits again.
		c = e.createDeposit(p)
		p.kill()
		p.start([]string{"SOFTATM_CRASH_AT=" + atmswitch.CrashDepositAfterCommit})
		e.takeDeposit(p, tl, c)
		if r := tl.confirmDeposit(p, c.ID, ""); r.err == nil {
			e.violation("%s: confirm answered %v", atmswitch.CrashDepositAfterCommit, r)
		}
		if !p.waitExit(crashWait) {
			e.violation("%s: the process never reached its crash point", atmswitch.CrashDepositAfterCommit)
		}
		e.fault("kill -9 at " + atmswitch.CrashDepositAfterCommit)
		p.start(nil)
		if r := tl.confirmDeposit(p, c.ID, ""); r.status != http.StatusConflict || r.code() != "code_already_used" {
			e.violation("%s: confirm after the restart: %v", atmswitch.CrashDepositAfterCommit, r)
		}
		if st, posts := e.row(c.ID); st != "credited" {
			e.violation("%s: deposit ended %s with %d postings", atmswitch.CrashDepositAfterCommit, st, posts)
		}
		credited++

		// kill -9 as a deposit's reversal is about to leave.
		c = e.createDeposit(p)
		e.takeDeposit(p, tl, c)
		p.kill()
		p.start([]string{"SOFTATM_CRASH_AT=" + atmswitch.CrashBeforeReversal})
		e.sim.SetMTIFault("0200", banksim.Fault{Kind: banksim.FaultLate, DelayMs: 1500})
		r := tl.confirmDeposit(p, c.ID, "")
		if r.err == nil && (r.status != http.StatusPaymentRequired || r.code() != "deposit_not_taken") {
			e.violation("%s: confirm answered %v", atmswitch.CrashBeforeReversal, r)
		}
		if !p.waitExit(crashWait) {
			e.violation("%s: the process never reached its crash point", atmswitch.CrashBeforeReversal)
		}
		e.sim.ClearFaults()
		e.fault("kill -9 before a deposit's 0420")
		p.start(nil)
		e.settleDeposits(p)

		// And deposits that go through.
		for range 3 {
			c := e.createDeposit(p)
			e.takeDeposit(p, tl, c)
			if r := tl.confirmDeposit(p, c.ID, ""); r.status != http.StatusOK {
				e.violation("a deposit without faults: %v", r)
			} else {
				credited++
			}
		}
		e.settleDeposits(p)
		e.rounds.Add(1)
	}
	e.settle(p)
	states := e.verifyDeposits()
	if states["credited"] != credited {
		e.violation("%d deposits confirmed, %d credited", credited, states["credited"])
	}
	e.verify()
}
