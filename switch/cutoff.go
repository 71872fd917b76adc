package atmswitch

import (
	"context"
	"fmt"

	"github.com/softatm/softatm/ledger"
)

// cutoffOf returns bank's business-day cut-off (the banks table's cutoff
// column, read again every bankRangesRefresh like the banks' limits). A
// payout is dated by it (Move.Cutoff → ledger.Unit.Cutoff): the day the
// bank's settlement file will put it in, whatever finance clicks.
func (s *Service) cutoffOf(ctx context.Context, bank string) (*ledger.Cutoff, error) {
	byBank, err := s.cutoffs.get(s.now(), bankRangesRefresh, func() (map[string]ledger.Cutoff, error) {
		return s.store.BankCutoffs(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("reading the banks' cut-offs: %w", err)
	}
	c, ok := byBank[bank]
	if !ok {
		// The banks table holds every bank a withdrawal names (a foreign
		// key); one created since the last read gets the default until
		// the next.
		c = ledger.DefaultCutoff
	}
	return &c, nil
}
