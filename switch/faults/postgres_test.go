package faults

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// Scenario 6: PostgreSQL under contention and cut. Many payouts at once on
// one post office's till and one bank's receivable: each answers, 200 or a
// clean refusal, with no hang (retries are bounded) and no double posting.
// Then the connections to PostgreSQL are reset while confirms are in
// flight, so some COMMITs have an unknown outcome: a confirm that answers
// 200 is paid, exactly once; one that answers an error is paid once or not
// at all, and the teller's retry finds out which.
func TestScenario6Postgres(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{dbProxy: true})
	p := e.serve("SATMF601", serveOpts{args: []string{"-db-conns", "24"}})
	tellers := e.loginAll(p, 24, "LS-001") // one till
	for round := range soakScale() {
		// Contention only.
		codes := e.createMany(p, 48)
		res := e.payAll(p, tellers, codes, nil)
		for i, r := range res {
			if r.err != nil || r.status != http.StatusOK {
				e.violation("round %d: payout %s under contention: %v", round, codes[i].ID, r)
			}
		}
		// Connections cut while confirms are in flight.
		codes = e.createMany(p, 48)
		cuts := 0
		res = e.payAll(p, tellers, codes, func() {
			for range 3 {
				time.Sleep(e.rnd.Duration(0, 150*time.Millisecond))
				cuts += e.dbPx.ResetAll()
			}
		})
		e.fault("PostgreSQL connections reset during confirms")
		ok, failed, paidAnyway := 0, 0, 0
		for i, r := range res {
			st, posts := e.row(codes[i].ID)
			paid := st == "paid" || st == "completed"
			if posts > 1 {
				e.violation("round %d: %s posted %d times", round, codes[i].ID, posts)
			}
			if paid != (posts == 1) {
				e.violation("round %d: %s is %s with %d postings", round, codes[i].ID, st, posts)
			}
			switch {
			case r.err == nil && r.status == http.StatusOK:
				ok++
				if !paid {
					e.violation("round %d: confirm of %s answered a receipt but it is %s", round, codes[i].ID, st)
				}
			case r.err != nil:
				e.violation("round %d: %s: %v", round, codes[i].ID, r)
			default:
				failed++
				if paid {
					paidAnyway++
				}
				// The teller tries again: a receipt, or "already paid".
				if st == "claimed" || paid {
					rr := tellers[i%len(tellers)].confirm(p, codes[i].ID, "")
					good := rr.status == http.StatusOK || (paid && rr.code() == "code_already_used")
					if !good && !(st == "claimed" && rr.status == http.StatusConflict) {
						e.violation("round %d: retry of %s (%s): %v", round, codes[i].ID, st, rr)
					}
				}
			}
		}
		t.Logf("round %d: %d connections reset; %d confirms answered a receipt, %d an error (%d of those were paid: the read-back could not reach the database either)",
			round, cuts, ok, failed, paidAnyway)
		e.settle(p)
		e.rounds.Add(1)
	}
	e.verify()
}

// createMany issues n codes, several at a time.
func (e *env) createMany(p *proc, n int) []created {
	e.t.Helper()
	out := make([]created, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for try := 0; ; try++ {
				c, r := e.create(p, "", e.createBody(e.amount()))
				if r.err == nil && r.status == http.StatusCreated {
					out[i] = c
					return
				}
				if try == 5 {
					e.t.Errorf("create: %v", r)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e.t.Failed() {
		e.t.FailNow()
	}
	return out
}

// payAll has the tellers pay the codes, all at once, and returns each
// code's final answer (the scan's, if it was refused). during runs while
// they do.
func (e *env) payAll(p *proc, tellers []*teller, codes []created, during func()) []reply {
	out := make([]reply, len(codes))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tl := tellers[i%len(tellers)]
			scanned, r := tl.pay(p, c)
			if !scanned && r.err == nil && r.status >= 500 {
				// The scan hit the cut: scan again, then confirm.
				scanned, r = tl.pay(p, c)
			}
			out[i] = r
		}()
	}
	close(start)
	if during != nil {
		during()
	}
	wg.Wait()
	return out
}
