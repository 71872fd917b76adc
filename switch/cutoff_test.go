package atmswitch_test

import (
	"context"
	"testing"
	"time"

	atmswitch "github.com/softatm/softatm/switch"
)

// afterMBCutoff is an env whose MB cuts its business day at 17:00, a
// service of it whose clock says 18:30 (+07:00), the next 18:30 to come
// (the codes are signed by the env's keyring, on the real clock: a time
// past would sign codes already expired), and MB's business day then: the
// calendar's next day.
func afterMBCutoff(t *testing.T, tweak ...func(*atmswitch.Config)) (*env, *atmswitch.Service, string) {
	t.Helper()
	e := newEnv(t, tweak...)
	if _, err := e.pool.Exec(context.Background(), `UPDATE banks SET cutoff = '17:00:00' WHERE code = 'MB'`); err != nil {
		t.Fatal(err)
	}
	ict := time.FixedZone("ICT", 7*3600)
	now := time.Now().In(ict)
	at := time.Date(now.Year(), now.Month(), now.Day(), 18, 30, 0, 0, ict)
	if at.Before(now) {
		at = at.AddDate(0, 0, 1)
	}
	return e, atmswitch.NewService(e.cfg, atmswitch.Deps{Pool: e.pool, Ledger: e.ledger, Bank: e.bank, Codes: e.codes,
		Gate: e.gate, Log: quietLog(), Metrics: e.m, Clock: func() time.Time { return at }}), at.AddDate(0, 0, 1).Format(time.DateOnly)
}

// A withdrawal's hold and its void are dated by its bank's cut-off, as its
// payout is: MB cuts at 17:00, so a code issued and cancelled at 18:30 is
// the next business day's, for both transfers.
func TestHoldAndVoidDatedByTheBanksCutoff(t *testing.T) {
	t.Parallel()
	e, svc, mbDay := afterMBCutoff(t)
	ctx := context.Background()
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
		if date != mbDay {
			t.Errorf("%s transfer dated %s, want %s (after MB's 17:00 cut-off)", kind, date, mbDay)
		}
	}
	if n != 2 {
		t.Fatalf("%d transfers, want the hold and its void", n)
	}
}

// The large-cash rule adds up the deposits of the bank's day, the day its
// credits are dated by: after MB's 17:00 cut-off, a deposit credited at
// 18:30 counts with the next one, not with the calendar day's.
func TestLargeCashDayIsTheBanksDay(t *testing.T) {
	t.Parallel()
	e, svc, mbDay := afterMBCutoff(t, func(c *atmswitch.Config) { c.LargeCashThreshold = 500_000 })
	ctx := context.Background()
	first := e.counted(t, svc, teller1, 300_000)
	if _, err := svc.ConfirmDeposit(ctx, teller1, first, ""); err != nil {
		t.Fatal(err)
	}
	var date string
	if err := e.pool.QueryRow(ctx, `SELECT credit_date::text FROM withdrawals WHERE id = $1`, first).Scan(&date); err != nil || date != mbDay {
		t.Fatalf("first deposit credited on %q (%v), want MB's %s", date, err, mbDay)
	}
	second, err := svc.Get(ctx, "MB", e.counted(t, svc, teller1, 300_000))
	if err != nil {
		t.Fatal(err)
	}
	if need, err := svc.IDRequired(ctx, second); err != nil || !need {
		t.Fatalf("ID required for a second 300,000 the same bank day: %v %v, want true (600,000 reaches 500,000)", need, err)
	}
}
