package recon

import (
	"context"
	"strings"
	"testing"
	"time"

	softatm "github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema"
	"github.com/softatm/softatm/ledger/schema/schematest"
)

// fakeDay is the switch's side of a close: the banks' cut-offs and its
// own open items.
type fakeDay struct {
	cuts map[string]ledger.Cutoff
	open []string
}

func (f fakeDay) Cutoffs(context.Context) (map[string]ledger.Cutoff, error) { return f.cuts, nil }
func (f fakeDay) OpenItems(context.Context, time.Time) ([]string, error)    { return f.open, nil }

// TestClosingListsWhatIsOpen: closing a day meets the latest bank's
// cut-off, then lists the banks whose file has not come, the unresolved
// rows and the switch's open items; with them it needs a reason.
func TestClosingListsWhatIsOpen(t *testing.T) {
	t.Parallel()
	pool := schematest.MustPool(t, schema.Ledger, Migrations)
	ict := time.FixedZone("ICT", 7*3600)
	now := time.Date(2025, 6, 2, 20, 0, 0, 0, ict)
	l := ledger.New(pool, ledger.WithClock(func() time.Time { return now }))
	t.Cleanup(l.Close)
	s := New(pool, newFakeSwitch(t, []wd{
		{"000000000001", "000001", "A00001", 100_000, "completed", "2025-06-02"},
		{"000000000002", "000002", "A00002", 200_000, "completed", "2025-06-02"},
	}))
	day := fakeDay{cuts: map[string]ledger.Cutoff{"MB": {Hour: 17}, "VCB": ledger.DefaultCutoff}, open: []string{"1 claim(s) in flight"}}
	ctx := context.Background()
	d := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)

	c, _, err := s.Closing(ctx, day, l, d)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ClosableAt.Equal(time.Date(2025, 6, 3, 0, 0, 0, 0, ict)) || c.Cutoffs["MB"] != "17:00:00" ||
		strings.Join(c.Open, "|") != "bank MB: 2 payout(s) awaiting the bank's settlement file|1 claim(s) in flight" {
		t.Fatalf("closing %+v", c)
	}
	if _, err := s.CloseDay(ctx, day, l, d, "finance", "reason"); softatm.ErrorCode(err) != softatm.EDayNotOver {
		t.Fatalf("close at 20:00 with VCB cut at 23:59:59: %v", err)
	}
	now = time.Date(2025, 6, 3, 0, 0, 1, 0, ict)
	file := "bank,business_date,cutoff\nMB,2025-06-02,17:00:00\n" + strings.Join(Header, ",") + "\n" +
		"000000000001,000001,A00001,100000,VND,2025-06-02T09:00:00+07:00,withdrawal\n"
	if _, err := s.Import(ctx, "", time.Time{}, "mb.csv", []byte(file)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Report(ctx, "MB", d); err != nil {
		t.Fatal(err)
	}
	c, err = s.CloseDay(ctx, day, l, d, "finance", "")
	if softatm.ErrorCode(err) != softatm.EDayOpenItems ||
		strings.Join(c.Open, "|") != "bank MB: 1 unresolved reconciliation row(s)|1 claim(s) in flight" {
		t.Fatalf("close with a row missing at the bank: %v, open %v", err, c.Open)
	}
	if _, err := s.CloseDay(ctx, day, l, d, "finance", "MB confirmed line 2 by phone"); err != nil {
		t.Fatal(err)
	}
	days, err := l.Days(ctx)
	if err != nil || len(days) != 1 || !days[0].Closed || days[0].CloseReason != "MB confirmed line 2 by phone" || len(days[0].OpenAtClose) != 2 {
		t.Fatalf("days %+v %v", days, err)
	}
}
