package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A batch of lazy units only (LazyCommit) commits with synchronous_commit
// off; one durable unit among them makes the whole batch durable.
func TestLazyCommit(t *testing.T) {
	t.Parallel()
	l, _ := mustLedger(t, WithBatch(64, 200*time.Millisecond))
	ctx := context.Background()
	// The test server runs with synchronous_commit off already (no fsync):
	// what tells a lazy batch is that its transaction set it.
	type seen struct {
		sync string
		txid int64
	}
	unit := func(ctx context.Context, out *seen) error {
		return l.Run(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT setting || ' from ' || source, txid_current() FROM pg_settings WHERE name = 'synchronous_commit'`).
				Scan(&out.sync, &out.txid)
		})
	}

	var alone seen
	if err := unit(LazyCommit(ctx), &alone); err != nil {
		t.Fatal(err)
	}
	if alone.sync != "off from session" {
		t.Fatalf("a batch of one lazy unit ran with synchronous_commit %q, want off from session (its SET LOCAL)", alone.sync)
	}
	if st := l.Stats(); st.LazyBatches != 1 || st.LazyUnits != 1 {
		t.Fatalf("stats after one lazy unit: %+v, want 1 lazy batch of 1 unit", st)
	}

	// A lazy and a durable unit sent at once share a batch (the committer
	// waits up to 200 ms for more); try again if they did not.
	for attempt := 0; ; attempt++ {
		var lazy, durable seen
		errs := make(chan error, 2)
		go func() { errs <- unit(LazyCommit(ctx), &lazy) }()
		go func() { errs <- unit(ctx, &durable) }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if lazy.txid != durable.txid {
			if attempt == 5 {
				t.Fatal("a lazy and a durable unit never shared a batch")
			}
			continue
		}
		if lazy.sync == "off from session" {
			t.Fatalf("a batch with a durable unit ran with synchronous_commit %q, want the server's", lazy.sync)
		}
		break
	}
	if st := l.Stats(); st.LazyBatches != 1 || st.LazyUnits != 1 {
		t.Fatalf("stats after a mixed batch: %+v, want still 1 lazy batch of 1 unit", st)
	}
}

// Background units are counted apart, and only when durable.
func TestBackgroundUnitsCounted(t *testing.T) {
	t.Parallel()
	l, _ := mustLedger(t, WithBatch(64, time.Millisecond))
	ctx := context.Background()
	noop := func(pgx.Tx) error { return nil }
	for _, c := range []context.Context{ctx, Background(ctx), Background(ctx), LazyCommit(Background(ctx))} {
		if err := l.Run(c, noop); err != nil {
			t.Fatal(err)
		}
	}
	// (Units itself is counted as the batch ends, after its callers are
	// answered: it may lag by the last batch here. These two are counted
	// before.)
	if st := l.Stats(); st.BackgroundUnits != 2 || st.LazyUnits != 1 {
		t.Fatalf("stats %+v, want of 4 units 2 durable background and 1 lazy", st)
	}
}
