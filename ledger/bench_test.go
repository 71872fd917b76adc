package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkCommitPayout commits one payout unit (post the hold, move the
// cash out of one hot till) per operation, sequentially and from parallel
// callers with and without batching. The holds are booked before the timer
// starts.
func BenchmarkCommitPayout(b *testing.B) {
	for _, c := range []struct {
		name     string
		parallel bool
		opts     []Option
	}{
		{"serial", false, nil},
		{"parallel/batch=1", true, nil},
		{"parallel/batch=64", true, []Option{WithBatch(64, time.Millisecond)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l, _ := mustLedger(b, c.opts...)
			ctx := context.Background()
			if err := l.Replenish(ctx, "LS-001", 1<<50, vnd, uuid.New()); err != nil {
				b.Fatal(err)
			}
			ids := make(chan uuid.UUID, b.N)
			for range b.N {
				w := uuid.New()
				if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{HoldTransfer(w, "MB", 100_000, vnd)}}); err != nil {
					b.Fatal(err)
				}
				ids <- w
			}
			close(ids)
			pay := func() error {
				w := <-ids
				_, err := l.Commit(ctx, Unit{Transfers: PayoutTransfers(w, "MB", "LS-001", 100_000, 0, vnd)})
				return err
			}
			b.ResetTimer()
			if !c.parallel {
				for range b.N {
					if err := pay(); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := pay(); err != nil {
						panic(fmt.Sprint(err))
					}
				}
			})
		})
	}
}
