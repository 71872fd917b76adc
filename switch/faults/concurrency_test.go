package faults

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/softatm/softatm/iso/banksim"
)

// Scenario 1: 64 tellers at 64 kiosks, on two switch instances sharing the
// database and Redis, scan and confirm the same code at once, round after
// round. Exactly one confirm per code succeeds and the ledger posts it once.
func TestScenario1ConcurrentRedeemOneCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	a := e.serve("SATMF101", serveOpts{})
	b := e.serve("SATMF102", serveOpts{})
	procs := []*proc{a, b}
	tellers := e.loginAll(a, 64)
	rounds := 5 * soakScale()
	for round := range rounds {
		c := e.mustCreate(procs[round%2])
		var mu sync.Mutex
		confirmed, scanned := 0, 0
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, tl := range tellers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, r := tl.pay(procs[i%2], c)
				mu.Lock()
				defer mu.Unlock()
				if ok {
					scanned++
				}
				if ok && r.err == nil && r.status == http.StatusOK {
					confirmed++
				}
				if r.err != nil || r.status >= 500 {
					e.violation("round %d: teller %s: %v", round, tl.name, r)
				}
			}()
		}
		close(start)
		wg.Wait()
		e.rounds.Add(1)
		if confirmed != 1 {
			e.violation("round %d: %d confirms succeeded for one code (%d scans)", round, confirmed, scanned)
		}
		if st, posts := e.row(c.ID); (st != "paid" && st != "completed") || posts != 1 {
			e.violation("round %d: withdrawal %s is %s with %d postings", round, c.ID, st, posts)
		}
	}
	e.settle(a)
	e.verify()
}

// Scenario 2: the same request resent ten times with one idempotency key,
// five of them while the first is still running (the bank is slowed so the
// first is in flight), five after. One withdrawal, one hold, one payout;
// every final answer is byte-for-byte the first; an in-flight resend may
// only be told 409 request_in_progress.
func TestScenario2IdempotentResend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	p := e.serve("SATMF201", serveOpts{})
	tl := e.loginAll(p, 1)[0]
	rounds := 3 * soakScale()
	for round := range rounds {
		// Create: slow the bank so the resends overlap the first request.
		account := mbAccounts[round%len(mbAccounts)]
		e.sim.SetFault(account, banksim.Fault{Kind: banksim.FaultDelay, DelayMs: 400})
		e.fault("bank answers 0100s for one account after 400 ms")
		key := uuid.NewString()
		body := map[string]any{"account": account, "amount": e.amount(), "currency": "VND",
			"holder_name": "Tran Thi Binh", "phone_last4": "5629"}
		before := e.sim.Received("0100")
		resend := func() reply {
			_, r := e.create(p, key, body)
			return r
		}
		first, during := e.resendTen(resend)
		e.sim.SetFault(account, banksim.Fault{})
		if first.status != http.StatusCreated {
			t.Fatalf("round %d: create: %v", round, first)
		}
		e.sameAnswers("create", round, first, during, resend)
		if n := e.sim.Received("0100") - before; n != 1 {
			e.violation("round %d: %d 0100s for one idempotency key", round, n)
		}
		var c created
		if err := jsonUnmarshal(first.body, &c); err != nil {
			t.Fatal(err)
		}
		// Confirm: resent ten times with one key, the first slowed by a
		// slow database write is not needed: the resends race it anyway.
		if r := tl.scan(p, c.QR); r.status != http.StatusOK {
			t.Fatalf("round %d: scan: %v", round, r)
		}
		ckey := uuid.NewString()
		confirm := func() reply { return tl.confirm(p, c.ID, ckey) }
		cfirst, cduring := e.resendTen(confirm)
		if cfirst.status != http.StatusOK {
			e.violation("round %d: first confirm: %v", round, cfirst)
		}
		e.sameAnswers("confirm", round, cfirst, cduring, confirm)
		if st, posts := e.row(c.ID); posts != 1 || (st != "paid" && st != "completed") {
			e.violation("round %d: after ten confirms %s has %d postings (%s)", round, c.ID, posts, st)
		}
		// Cancel of another code, resent ten times.
		c2 := e.mustCreate(p)
		cancelKey := uuid.NewString()
		cancel := func() reply {
			return do(plainClient, "POST", p.url+"/v1/withdrawals/"+c2.ID.String()+"/cancel", e.bankHeaders("MB", cancelKey), nil)
		}
		kfirst, kduring := e.resendTen(cancel)
		if kfirst.status != http.StatusOK {
			e.violation("round %d: first cancel: %v", round, kfirst)
		}
		e.sameAnswers("cancel", round, kfirst, kduring, cancel)
		e.rounds.Add(1)
	}
	e.settle(p)
	e.verify()
	if n := e.sim.Received("0420"); n == 0 {
		e.violation("no reversal reached the bank")
	}
}

// resendTen sends the request once and, while it runs, four more at once;
// it returns the first answer and the overlapping ones.
func (e *env) resendTen(send func() reply) (first reply, during []reply) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := make(chan reply, 1)
	go func() { done <- send() }()
	time.Sleep(time.Duration(50+e.rnd.IntN(100)) * time.Millisecond)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := send()
			mu.Lock()
			during = append(during, r)
			mu.Unlock()
		}()
	}
	first = <-done
	wg.Wait()
	return first, during
}

// sameAnswers checks the overlapping answers and sends five more after.
func (e *env) sameAnswers(what string, round int, first reply, during []reply, send func() reply) {
	e.t.Helper()
	for _, r := range during {
		if r.status == http.StatusConflict && r.code() == "request_in_progress" {
			continue
		}
		if r.status != first.status || !bytes.Equal(r.body, first.body) {
			e.violation("round %d: %s resent while running: %v, first was %v", round, what, r, first)
		}
	}
	for range 5 {
		r := send()
		if r.status != first.status || !bytes.Equal(r.body, first.body) {
			e.violation("round %d: %s resent after: %v, first was %v", round, what, r, first)
		}
	}
}
