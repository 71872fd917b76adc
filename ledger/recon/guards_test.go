package recon

// Tests that each kill a mutation of one guard (issue 20; the list is
// scripts/mutate/guards.txt). Each was seen to fail with its guard changed.

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestReportIsPerBank: a bank's report holds only that bank's payouts; a
// payout of another bank the same day is not "missing at bank" in it.
func TestReportIsPerBank(t *testing.T) {
	t.Parallel()
	s, pool := mustStore(t, plantedSwitch[:1])
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state,
		terminal_id, stan, rrn, transmitted_at, approval_code, post_office, paid_at, business_date)
		VALUES ($1, 'VCB', '0123456789', 700000, 'VND', 'completed', 'KIOSK001', '000777', '000000000777', now(),
			'A00777', 'LS-001', now(), '2025-06-02')`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	for bank, want := range map[string]string{"MB": "000000000001", "VCB": "000000000777"} {
		items, err := s.Report(ctx, bank, day)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || items[0].RRN != want || items[0].Status != StatusMissingAtBank {
			t.Errorf("%s report %+v, want only %s missing at bank", bank, items, want)
		}
	}
}
