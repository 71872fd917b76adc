package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema/schematest"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// Settings of BenchmarkInstances.
const (
	instancesClients    = 16 // concurrent payouts in all, spread over the instances
	instancesBatchUnits = 64 // serve's -ledger-batch default
)

// BenchmarkInstances measures payouts (a hold, then its posting to one hot
// till) committed per second by one switch instance's committer (without
// and with the commit lock, to show what the lock costs alone), by two
// instances' committers colliding on one database, and by two taking turns
// under the commit lock (ledger/lease.go). Each instance has its own pool
// and ledger, as two processes would. It reports payouts/s and the
// transactions re-run per payout; the figures go in bench/RESULTS.md.
//
//	go test -run '^$' -bench Instances -benchtime 2000x ./bench/
func BenchmarkInstances(b *testing.B) {
	for _, c := range []struct {
		name      string
		instances int
		lock      string
	}{
		{"one-instance-no-lock", 1, ""},
		{"one-instance-commit-lock", 1, "ledger"},
		{"two-instances-no-lock", 2, ""},
		{"two-instances-commit-lock", 2, "ledger"},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			url := schematest.MustMigratedDB(b, switchschema.All()...)
			ledgers := make([]*ledger.Ledger, c.instances)
			for i := range ledgers {
				pool, err := pgxpool.New(ctx, url)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(pool.Close)
				ledgers[i] = ledger.New(pool, ledger.WithBatch(instancesBatchUnits, 0), ledger.WithCommitLock(c.lock))
				b.Cleanup(ledgers[i].Close)
			}
			l := ledgers[0]
			for _, a := range []struct {
				code  string
				flags ledger.Flags
			}{
				{ledger.ReceivableCode("MB"), 0}, {ledger.AccountInFlight, 0}, {ledger.AccountFees, 0},
				{ledger.AccountSettlement, 0}, {ledger.TillCode("LS-001"), ledger.FlagCreditsMustNotExceedDebits},
			} {
				if err := l.EnsureAccount(ctx, a.code, "704", a.flags); err != nil {
					b.Fatal(err)
				}
			}
			if err := l.Replenish(ctx, "LS-001", 1<<50, "704", uuid.New()); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			before := ledger.Retries()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range instancesClients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := ledgers[w%len(ledgers)]
					for next.Add(1) <= int64(b.N) {
						id := uuid.New()
						if _, err := l.Commit(ctx, ledger.Unit{Transfers: []ledger.Transfer{ledger.HoldTransfer(id, "MB", 100_000, "704")}}); err != nil {
							b.Error(err)
							return
						}
						if _, err := l.Commit(ctx, ledger.Unit{Transfers: ledger.PayoutTransfers(id, "MB", "LS-001", 100_000, 0, "704")}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "payouts/s")
			b.ReportMetric(float64(ledger.Retries()-before)/float64(b.N), "reruns/payout")
		})
	}
}
