package faults

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// Scenario 7: two instances whose clocks differ by five minutes (the
// skewed one runs with SOFTATM_CLOCK_OFFSET), sharing the database and
// Redis, with a skew allowance (-clock-skew) that covers it. (With the
// default 30 s allowance and 5 min of real skew, codes issued on the fast
// instance are refused as invalid on the others, "would live too long":
// safe, but the operator must set the allowance to the real skew.) Before
// the sweeper allowed for skew, the fast instance failed every request
// the slow one had in flight. Codes issued by one are
// redeemed on the other; codes are timed so that, on the redeeming
// instance's clock, tellers scan them exactly at the end of their
// lifetime, while that instance's sweeper is expiring them. Each such code
// is either paid or refused as expired, never both, and its hold at the
// bank ends captured or released accordingly.
func TestScenario7ClockSkew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		offset string // of instance B; A runs on the real clock
	}{{"B ahead 5m", "5m"}, {"B behind 5m", "-5m"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, opts{})
			// The skew allowance covers the skew (an operator must set it
			// so), plus 5 s. A code lives 2 s: one issued on the slow
			// instance then ends, on the fast one's clock, 2 s + 5m5s - 5m
			// = 7 s after it is issued (less up to 1 s, as expiries are
			// whole seconds), and that is when tellers try it there.
			const ttl, allowance = 2 * time.Second, 5*time.Minute + 5*time.Second
			const edge = 6500 * time.Millisecond
			args := []string{"-code-ttl", ttl.String(), "-clock-skew", allowance.String(), "-sweep-every", "100ms"}
			a := e.serve("SATMF701", serveOpts{args: args})
			b := e.serve("SATMF702", serveOpts{args: args, env: []string{"SOFTATM_CLOCK_OFFSET=" + tc.offset}})
			issuer, redeemer := a, b // A is slow relative to B
			if tc.offset[0] == '-' {
				issuer, redeemer = b, a
			}
			tellers := e.loginAll(redeemer, 16)
			// Cross-instance redemption well inside the lifetime works both ways.
			for i, pair := range [][2]*proc{{a, b}, {b, a}} {
				c := e.mustCreate(pair[0])
				if _, r := tellers[i].pay(pair[1], c); r.status != http.StatusOK {
					e.violation("%s issued, %s redeemed: %v", pair[0].name, pair[1].name, r)
				}
			}
			for round := range 2 * soakScale() {
				// Codes issued on the slow clock reach their end on the fast
				// one about edge after issue; tellers try them around it.
				codes := make([]created, len(tellers))
				issued := make([]time.Time, len(tellers))
				for i := range codes {
					codes[i] = e.mustCreate(issuer)
					issued[i] = time.Now()
				}
				var wg sync.WaitGroup
				var mu sync.Mutex
				paid, refused := 0, 0
				for i, c := range codes {
					at := issued[i].Add(edge + e.rnd.Duration(-800*time.Millisecond, 800*time.Millisecond))
					wg.Add(1)
					go func() {
						defer wg.Done()
						time.Sleep(time.Until(at))
						_, r := tellers[i].pay(redeemer, c)
						st, posts := e.row(c.ID)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case r.status == http.StatusOK:
							paid++
							if (st != "paid" && st != "completed") || posts != 1 {
								e.violation("%s answered a receipt but is %s with %d postings", c.ID, st, posts)
							}
						case r.code() == "code_expired" || r.code() == "code_cancelled":
							refused++
							if st == "paid" || st == "completed" || posts != 0 {
								e.violation("%s refused as expired but is %s with %d postings", c.ID, st, posts)
							}
						default:
							e.violation("%s at expiry: %v (%s)", c.ID, r, st)
						}
					}()
				}
				wg.Wait()
				e.fault("redemptions at expiry across a " + tc.offset + " skew")
				t.Logf("round %d: at the edge %d paid, %d refused as expired", round, paid, refused)
				e.rounds.Add(1)
			}
			e.settle(redeemer)
			e.verify()
		})
	}
}
