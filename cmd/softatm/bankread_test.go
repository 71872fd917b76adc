package main

import (
	"net/http"
	"testing"

	"github.com/softatm/softatm"
	atmswitch "github.com/softatm/softatm/switch"
)

// TestBankAppReads: through the running switch, a bank's app lists its
// customer's active codes and reads the limits, and is refused another
// bank's account.
func TestBankAppReads(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	mb := s.Demo.Accounts[0].Number // MB's
	var agr string
	for _, a := range s.Demo.Accounts {
		if a.Bank == "AGR" {
			agr = a.Number
			break
		}
	}
	active := s.createWithdrawal(t, mb, 100_000)
	gone := s.createWithdrawal(t, mb, 200_000)
	if status, raw := s.call(t, nil, "POST", "/v1/withdrawals/"+gone.ID.String()+"/cancel", s.bankHeaders(""), nil, nil); status != http.StatusOK {
		t.Fatalf("cancel: %d %s", status, raw)
	}

	var list atmswitch.ActiveList
	if status, raw := s.call(t, nil, "GET", "/v1/withdrawals?account="+mb+"&state=active", s.bankHeaders(""), nil, &list); status != http.StatusOK {
		t.Fatalf("list: %d %s", status, raw)
	}
	if len(list.Withdrawals) != 1 || list.Withdrawals[0].ID != active.ID {
		t.Fatalf("active codes %+v, want only %s", list.Withdrawals, active.ID)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if status, _ := s.call(t, nil, "GET", "/v1/withdrawals?account="+agr+"&state=active", s.bankHeaders(""), nil, &e); status != http.StatusForbidden ||
		e.Error.Code != softatm.EAccountNotOfBank {
		t.Fatalf("MB's app listing an AGR account: %d %q", status, e.Error.Code)
	}
	if status, _ := s.call(t, nil, "GET", "/v1/withdrawals?account="+mb+"&state=active", nil, nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("listing without credentials: %d", status)
	}

	var l atmswitch.Limits
	if status, raw := s.call(t, nil, "GET", "/v1/limits?account="+mb, s.bankHeaders(""), nil, &l); status != http.StatusOK {
		t.Fatalf("limits: %d %s", status, raw)
	}
	cfg := s.Main.Config.Switch
	if l.AmountMin != cfg.AmountMin || l.AmountMax != cfg.AmountMax || l.AmountMultiple != cfg.NoteUnit ||
		l.AccountDailyMax != cfg.AccountDailyMax || l.AccountDailyUsed == nil || *l.AccountDailyUsed != 100_000 {
		t.Fatalf("limits %+v", l)
	}
}
