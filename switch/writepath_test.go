package atmswitch_test

import (
	"context"
	"testing"
)

// TestOutboxLeaseRidesTheBatch: leasing the outbox is a statement unit of
// the committer, sent in its batch's one pipelined round trip: a lease
// costs BEGIN, that round trip and COMMIT, not a savepoint and round trips
// of its own in the serial committer.
func TestOutboxLeaseRidesTheBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.outbox.Drain(ctx); err != nil { // the first run of a text is sent alone
		t.Fatal(err)
	}
	before := e.ledger.Stats().RoundTrips
	if _, err := e.outbox.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.ledger.Stats().RoundTrips - before; n != 3 {
		t.Errorf("a lease with nothing due took %d round trips, want 3 (BEGIN, the lease, COMMIT)", n)
	}
}
