package atmswitch_test

import (
	"context"
	"testing"
	"time"

	atmswitch "github.com/softatm/softatm/switch"
)

// A withdrawal's hold and its void are dated by its bank's cut-off, as its
// payout is: MB cuts at 17:00, so a code issued and cancelled at 18:30 is
// the next business day's, for both transfers.
func TestHoldAndVoidDatedByTheBanksCutoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE banks SET cutoff = '17:00:00' WHERE code = 'MB'`); err != nil {
		t.Fatal(err)
	}
	loc := time.FixedZone("ICT", 7*3600)
	at := time.Date(2026, 11, 27, 18, 30, 0, 0, loc)
	svc := atmswitch.NewService(e.cfg, atmswitch.Deps{Pool: e.pool, Ledger: e.ledger, Bank: e.bank, Codes: e.codes,
		Gate: e.gate, Log: quietLog(), Metrics: e.m, Clock: func() time.Time { return at }})
	is, err := svc.Create(ctx, "MB", atmswitch.CreateRequest{Account: acctRich, Amount: 300_000, Currency: "VND",
		HolderName: "Nguyen Van An", PhoneLast4: phoneRich})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Cancel(ctx, "MB", is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	rows, err := e.pool.Query(ctx, `SELECT kind, business_date::text FROM transfers WHERE withdrawal_id = $1 ORDER BY kind`, is.Withdrawal.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var kind, date string
		if err := rows.Scan(&kind, &date); err != nil {
			t.Fatal(err)
		}
		n++
		if date != "2026-11-28" {
			t.Errorf("%s transfer dated %s, want 2026-11-28 (after MB's 17:00 cut-off)", kind, date)
		}
	}
	if n != 2 {
		t.Fatalf("%d transfers, want the hold and its void", n)
	}
}
