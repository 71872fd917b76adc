package main

import (
	"net/http"
	"testing"

	atmswitch "github.com/softatm/softatm/switch"
)

// TestDemoRefusalReasons: the demo bank app's answers carry, beside the
// switch's error code, the reason the app explains; the limits it serves
// are the switch's own.
func TestDemoRefusalReasons(t *testing.T) {
	t.Parallel()
	const dailyMax = 4_000_000 // above the bank limit of account ...0023 (3.000.000), below an asked 5.000.000
	s := startSystem(t, func(c *ServeConfig) { c.Switch.AccountDailyMax = dailyMax })

	var lim atmswitch.Limits
	if st, raw := s.call(t, nil, "GET", "/demo/api/limits", nil, nil, &lim); st != http.StatusOK {
		t.Fatalf("limits: %d %s", st, raw)
	}
	def := atmswitch.DefaultConfig()
	if want := (atmswitch.Limits{Currency: def.Currency, AmountMin: def.AmountMin, AmountMax: def.AmountMax, AmountMultiple: def.NoteUnit,
		AccountDailyMax: dailyMax}); lim != want {
		t.Errorf("limits %+v, want the switch's %+v", lim, want)
	}

	type answer struct {
		Error struct{ Code, Reason string } `json:"error"`
	}
	create := func(account string, amount int64) (int, answer) {
		t.Helper()
		var a answer
		st, _ := s.call(t, nil, "POST", "/demo/api/withdrawals", nil, map[string]any{"account": account, "amount": amount}, &a)
		return st, a
	}
	for _, c := range []struct {
		name         string
		account      string
		amount       int64
		status       int
		code, reason string
	}{
		{"not enough money", "9704000000000037", 500_000, http.StatusPaymentRequired, "declined", "insufficient_funds"},
		{"blocked account", "9704050000000031", 100_000, http.StatusPaymentRequired, "declined", "account_blocked"},
		{"the bank's daily limit", "9704050000000023", 3_500_000, http.StatusUnprocessableEntity, "limit_exceeded", "bank_daily_limit"},
		{"the switch's daily limit", "9704000000000011", 5_000_000, http.StatusUnprocessableEntity, "limit_exceeded", "daily_limit"},
		{"not a multiple of the note", "9704000000000011", 125_000, http.StatusUnprocessableEntity, "invalid_amount", ""},
	} {
		st, a := create(c.account, c.amount)
		if st != c.status || a.Error.Code != c.code || a.Error.Reason != c.reason {
			t.Errorf("%s: %d %s/%s, want %d %s/%s", c.name, st, a.Error.Code, a.Error.Reason, c.status, c.code, c.reason)
		}
	}

	// One live code per account: the second request is refused, and the
	// first is listed as the account's live code.
	var first atmswitch.WithdrawalView
	if st, raw := s.call(t, nil, "POST", "/demo/api/withdrawals", nil, map[string]any{"account": "9704000000000011", "amount": 500_000}, &first); st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, raw)
	}
	st, a := create("9704000000000011", 200_000)
	if st != http.StatusConflict || a.Error.Code != "conflict" || a.Error.Reason != "active_code" {
		t.Errorf("a second live code: %d %s/%s, want 409 conflict/active_code", st, a.Error.Code, a.Error.Reason)
	}
	var live struct {
		Withdrawals []atmswitch.WithdrawalView `json:"withdrawals"`
	}
	if st, raw := s.call(t, nil, "GET", "/demo/api/accounts/9704000000000011/active", nil, nil, &live); st != http.StatusOK {
		t.Fatalf("active: %d %s", st, raw)
	}
	if len(live.Withdrawals) != 1 || live.Withdrawals[0].ID != first.ID || live.Withdrawals[0].QRPNG == "" || live.Withdrawals[0].NumericCode != "" {
		t.Errorf("the live codes %+v, want the first one, with its QR and without a numeric code", live.Withdrawals)
	}
	if st, _ := s.call(t, nil, "GET", "/demo/api/accounts/0000/active", nil, nil, nil); st == http.StatusOK {
		t.Error("an unknown account has live codes")
	}
	// Cancelled, it is no longer live, and a new code can be made.
	if st, raw := s.call(t, nil, "POST", "/demo/api/withdrawals/"+first.ID.String()+"/cancel", nil, nil, nil); st != http.StatusOK {
		t.Fatalf("cancel: %d %s", st, raw)
	}
	live.Withdrawals = nil
	s.call(t, nil, "GET", "/demo/api/accounts/9704000000000011/active", nil, nil, &live)
	if len(live.Withdrawals) != 0 {
		t.Errorf("after the cancel, live codes %+v", live.Withdrawals)
	}
	if st, _ := create("9704000000000011", 200_000); st != http.StatusCreated {
		t.Errorf("a new code after the cancel: %d", st)
	}
}
