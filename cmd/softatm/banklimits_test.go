package main

import (
	"context"
	"net/http"
	"testing"

	atmswitch "github.com/softatm/softatm/switch"
)

// TestAdminBankLimits: `softatm admin bank -amount-max ...` sets a bank's
// own limits, refuses limits that cannot work, returns one to the default
// with "default", and a running switch applies the change within seconds.
func TestAdminBankLimits(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := context.Background()
	db := s.Main.Config.DatabaseURL
	b := s.Demo.Banks[0]
	admin := func(args ...string) error {
		return runAdmin(ctx, append([]string{"bank", "-database", db, "-code", b.Code, "-name", b.Name}, args...))
	}
	if err := admin("-amount-min", "100000", "-amount-max", "2000000", "-amount-multiple", "50000", "-account-daily-max", "3000000"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		{"-amount-max", "50000"},        // below the minimum
		{"-amount-multiple", "5000"},    // no note pays it
		{"-amount-min", "0"},            // not positive
		{"-account-daily-max", "lots"},  // not a number
		{"-account-daily-max", "-1000"}, // negative
	} {
		if err := admin(bad...); err == nil {
			t.Fatalf("admin bank %v accepted", bad)
		}
	}
	if err := admin("-amount-min", "default"); err != nil {
		t.Fatal(err)
	}
	var min, max *int64
	if err := s.Pool.QueryRow(ctx, `SELECT amount_min, amount_max FROM banks WHERE code = $1`, b.Code).Scan(&min, &max); err != nil {
		t.Fatal(err)
	}
	if min != nil || max == nil || *max != 2_000_000 {
		t.Fatalf("amount_min %v amount_max %v, want default and 2000000", min, max)
	}
	cfg := s.Main.Config.Switch
	eventually(t, "the running switch applies MB's own limits", func() bool {
		var l atmswitch.Limits
		status, _ := s.call(t, nil, "GET", "/v1/limits", s.bankHeaders(""), nil, &l)
		return status == http.StatusOK && l.AmountMax == 2_000_000 && l.AmountMin == cfg.AmountMin &&
			l.AmountMultiple == 50_000 && l.AccountDailyMax == 3_000_000
	})
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	status, _ := s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{
		"account": s.Demo.Accounts[0].Number, "amount": 2_500_000, "currency": "VND", "holder_name": "Nguyen Van An", "phone_last4": "5611",
	}, &e)
	if status != http.StatusUnprocessableEntity || e.Error.Code != "invalid_amount" {
		t.Fatalf("2,500,000 over MB's own maximum: %d %q", status, e.Error.Code)
	}
}
