package atmswitch_test

import (
	"context"
	"sync"
	"testing"

	"github.com/softatm/softatm/iso"
	atmswitch "github.com/softatm/softatm/switch"
)

// reversalRecorder is the bank link, keeping a copy of every reversal sent.
type reversalRecorder struct {
	atmswitch.Bank
	mu        sync.Mutex
	reversals []iso.AdviceRequest
}

func (b *reversalRecorder) Reverse(ctx context.Context, r iso.AdviceRequest) (iso.AdviceResponse, error) {
	b.mu.Lock()
	b.reversals = append(b.reversals, r)
	b.mu.Unlock()
	return b.Bank.Reverse(ctx, r)
}

// TestReversalCarriesConfiguredAcceptorName: a reversal names the acceptor
// the outbox was configured with, not a name written into the code.
func TestReversalCarriesConfiguredAcceptorName(t *testing.T) {
	t.Parallel()
	const name = "BUU DIEN VIET NAM CASH-OUT"
	e := newEnv(t, func(c *atmswitch.Config) { c.AcceptorName = name })
	rec := &reversalRecorder{Bank: e.bank}
	ocfg := atmswitch.DefaultOutboxConfig()
	ocfg.AcceptorName = name
	e.outbox = atmswitch.NewOutbox(ocfg, e.pool, e.ledger, rec, quietLog(), nil, nil)

	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Cancel(context.Background(), "MB", is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	e.drain(t)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reversals) != 1 {
		t.Fatalf("%d reversals sent, want 1", len(rec.reversals))
	}
	// Field 43 in the 1987 layout: the name cut to its 25 characters.
	if got, want := rec.reversals[0].AcceptorName, iso.AcceptorLocation(name, "", iso.CountryVN); got != want {
		t.Fatalf("reversal's acceptor name %q, want %q", got, want)
	}
}
