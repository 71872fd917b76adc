package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
)

// TestRandomWorkload runs 10,000 random transfers (single, pending then
// post, pending then void, some refused by a till) from 8 goroutines
// through the batching committer, while another goroutine reads every
// balance at once, over and over. Every snapshot must balance (debits equal
// credits, pending and posted alike) and no till may ever be overdrawn; at
// the end the full invariant check must pass and the committed transfers
// must account for the balances.
func TestRandomWorkload(t *testing.T) {
	t.Parallel()
	const (
		workers   = 8
		transfers = 10_000
		tills     = 3
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	l, pool := mustLedger(t, WithBatch(32, time.Millisecond))
	ctx := context.Background()
	codes := []string{ReceivableCode("MB"), ReceivableCode("VCB"), AccountInFlight, AccountSettlement}
	for i := range tills {
		po := fmt.Sprintf("WL-%03d", i)
		if err := l.Replenish(ctx, po, 100_000, vnd, uuid.New()); err != nil {
			t.Fatal(err)
		}
		codes = append(codes, TillCode(po))
	}

	stop := make(chan struct{})
	var snapshots atomic.Int64
	readerDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			var dp, dpo, cp, cpo, overdrawn int64
			err := pool.QueryRow(ctx, `SELECT COALESCE(SUM(debits_pending), 0), COALESCE(SUM(debits_posted), 0),
				COALESCE(SUM(credits_pending), 0), COALESCE(SUM(credits_posted), 0),
				COUNT(*) FILTER (WHERE flags & 1 = 1 AND credits_posted + credits_pending > debits_posted)
				FROM accounts`).Scan(&dp, &dpo, &cp, &cpo, &overdrawn)
			if IsRetryable(err) {
				continue
			}
			if err != nil {
				readerDone <- err
				return
			}
			if dp != cp || dpo != cpo || overdrawn != 0 {
				readerDone <- fmt.Errorf("snapshot broken: pending %d/%d posted %d/%d overdrawn tills %d", dp, cp, dpo, cpo, overdrawn)
				return
			}
			snapshots.Add(1)
		}
	}()

	var wg sync.WaitGroup
	var committed, refused atomic.Int64
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for range transfers / workers {
				debit, credit := codes[rng.IntN(len(codes))], codes[rng.IntN(len(codes))]
				for credit == debit {
					credit = codes[rng.IntN(len(codes))]
				}
				amount := int64(1 + rng.IntN(50_000))
				id := uuid.New()
				var units []Unit
				switch rng.IntN(3) {
				case 0:
					units = []Unit{{Transfers: []Transfer{single(id, debit, credit, amount)}}}
				case 1, 2:
					pending := Transfer{ID: id, Debit: debit, Credit: credit, Amount: amount, Currency: vnd, Kind: KindPending}
					resolve := Transfer{ID: uuid.New(), PendingID: id, Currency: vnd, Kind: KindVoidPending}
					if rng.IntN(2) == 0 {
						resolve.Kind, resolve.Amount = KindPostPending, amount-int64(rng.IntN(int(amount)))
					}
					units = []Unit{{Transfers: []Transfer{pending}}, {Transfers: []Transfer{resolve}}}
				}
				for _, u := range units {
					_, err := l.Commit(ctx, u)
					switch softatm.ErrorCode(err) {
					case "":
						committed.Add(1)
					case softatm.ETillShort:
						refused.Add(1)
					default:
						errs <- fmt.Errorf("commit: %w", err)
						return
					}
					if err != nil {
						break // a refused pending has nothing to resolve
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d units committed, %d refused by a till, %d balanced snapshots read", committed.Load(), refused.Load(), snapshots.Load())
	if committed.Load() == 0 || snapshots.Load() == 0 {
		t.Fatal("the workload did nothing")
	}
	mustCheck(t, pool)
}
