package atmswitch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	atmswitch "github.com/softatm/softatm/switch"
)

// bankAPIAs serves the bank API as if bank's client were authenticated.
func bankAPIAs(e *env, bank string) *atmswitch.BankAPI {
	return &atmswitch.BankAPI{Service: e.svc, Log: quietLog(),
		BankOf: func(*http.Request) (string, bool) { return bank, true }}
}

func get(t *testing.T, h http.HandlerFunc, target string, out any) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if out != nil && rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatal(err)
		}
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return rec.Code, e.Error.Code
}

// TestActiveCodes: an account's active codes are its reserved and claimed
// ones, not its paid, cancelled or expired ones, and never another bank's
// account's.
func TestActiveCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	reserved := e.issue(t, acctRich, 100_000)
	claimed := e.issue(t, acctRich, 200_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: claimed.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	paid := e.issue(t, acctRich, 300_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: paid.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, paid.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	cancelled := e.issue(t, acctRich, 400_000)
	if _, err := e.svc.Cancel(ctx, "MB", cancelled.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	expired := e.issue(t, acctRich, 500_000)
	if _, err := e.pool.Exec(ctx, `UPDATE withdrawals SET expires_at = now() - interval '1 minute' WHERE id = $1`, expired.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	other := e.issue(t, acctPoor, 50_000) // same bank, another account

	mb := bankAPIAs(e, "MB")
	var list atmswitch.ActiveList
	status, code := get(t, mb.List, "/v1/withdrawals?account="+acctRich+"&state=active", &list)
	if status != http.StatusOK {
		t.Fatalf("list: %d %s", status, code)
	}
	var ids []uuid.UUID
	for _, v := range list.Withdrawals {
		ids = append(ids, v.ID)
		if v.Account != "************0011" || v.QRPayload == "" {
			t.Fatalf("listed %+v", v)
		}
	}
	want := []uuid.UUID{claimed.Withdrawal.ID, reserved.Withdrawal.ID} // newest first
	if len(ids) != 2 || ids[0] != want[0] || ids[1] != want[1] {
		t.Fatalf("active codes %v, want %v (not paid, cancelled, expired, nor %s)", ids, want, other.Withdrawal.ID)
	}

	for _, tc := range []struct {
		name, bank, target string
		status             int
		code               string
	}{
		{"state omitted means active", "MB", "/v1/withdrawals?account=" + acctRich, http.StatusOK, ""},
		{"another bank's account", "AGR", "/v1/withdrawals?account=" + acctRich + "&state=active", http.StatusForbidden, softatm.EAccountNotOfBank},
		{"an account of no bank", "MB", "/v1/withdrawals?account=1234567890&state=active", http.StatusForbidden, softatm.EAccountNotOfBank},
		{"another state", "MB", "/v1/withdrawals?account=" + acctRich + "&state=paid", http.StatusBadRequest, softatm.EInvalid},
		{"no account", "MB", "/v1/withdrawals?state=active", http.StatusBadRequest, softatm.EInvalid},
		{"malformed account", "MB", "/v1/withdrawals?account=97040A&state=active", http.StatusBadRequest, softatm.EInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code := get(t, bankAPIAs(e, tc.bank).List, tc.target, nil)
			if status != tc.status || code != tc.code {
				t.Fatalf("%d %q, want %d %q", status, code, tc.status, tc.code)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.issue(t, acctRich, 1_500_000)
	mb := bankAPIAs(e, "MB")

	var l atmswitch.Limits
	if status, code := get(t, mb.Limits, "/v1/limits", &l); status != http.StatusOK {
		t.Fatalf("limits: %d %s", status, code)
	}
	if l.Currency != "704" || l.AmountMin != e.cfg.AmountMin || l.AmountMax != e.cfg.AmountMax ||
		l.AmountMultiple != e.cfg.NoteUnit || l.AccountDailyMax != e.cfg.AccountDailyMax || l.AccountDailyUsed != nil {
		t.Fatalf("limits %+v", l)
	}
	var la atmswitch.Limits
	if status, code := get(t, mb.Limits, "/v1/limits?account="+acctRich, &la); status != http.StatusOK {
		t.Fatalf("limits for an account: %d %s", status, code)
	}
	if la.AccountDailyUsed == nil || *la.AccountDailyUsed != 1_500_000 || la.AccountDailyRemaining == nil ||
		*la.AccountDailyRemaining != e.cfg.AccountDailyMax-1_500_000 || la.Account != "************0011" {
		t.Fatalf("limits for the account %+v", la)
	}
	if status, code := get(t, bankAPIAs(e, "AGR").Limits, "/v1/limits?account="+acctRich, nil); status != http.StatusForbidden ||
		code != softatm.EAccountNotOfBank {
		t.Fatalf("another bank's account: %d %q", status, code)
	}
}

// TestBankLimits: a bank's own limits replace the configured ones for its
// accounts' creates (and its /v1/limits); another bank keeps the defaults.
func TestBankLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE banks SET amount_min = 100000, amount_max = 1000000, amount_multiple = 50000,
		account_daily_max = 250000 WHERE code = 'AGR'`); err != nil {
		t.Fatal(err)
	}
	create := func(bank, account string, amount int64) error {
		_, err := e.svc.Create(ctx, bank, atmswitch.CreateRequest{Account: account, Amount: amount, Currency: "VND",
			HolderName: "Pham Van Em", PhoneLast4: "4323"})
		return err
	}
	for _, tc := range []struct {
		name, bank, account string
		amount              int64
		code                string
		sent                bool // a 0100 went to the bank
	}{
		{"below AGR's minimum", "AGR", acctLimit, 60_000, softatm.EInvalidAmount, false},
		{"not AGR's multiple", "AGR", acctLimit, 120_000, softatm.EInvalidAmount, false},
		{"above AGR's maximum", "AGR", acctLimit, 1_500_000, softatm.EInvalidAmount, false},
		{"within AGR's limits", "AGR", acctLimit, 200_000, "", true},
		{"over AGR's daily maximum", "AGR", acctLimit, 100_000, softatm.ELimit, false},
		{"MB keeps the defaults", "MB", acctRich, 60_000, "", true},
	} {
		before := e.sim.Received("0100")
		err := create(tc.bank, tc.account, tc.amount)
		if got := softatm.ErrorCode(err); got != tc.code {
			t.Fatalf("%s: error %v (%q), want %q", tc.name, err, got, tc.code)
		}
		if sent := e.sim.Received("0100") > before; sent != tc.sent {
			t.Fatalf("%s: 0100 sent %v, want %v", tc.name, sent, tc.sent)
		}
	}

	var agr, mb atmswitch.Limits
	if status, code := get(t, bankAPIAs(e, "AGR").Limits, "/v1/limits?account="+acctLimit, &agr); status != http.StatusOK {
		t.Fatalf("AGR limits: %d %s", status, code)
	}
	if agr.AmountMin != 100_000 || agr.AmountMax != 1_000_000 || agr.AmountMultiple != 50_000 || agr.AccountDailyMax != 250_000 ||
		*agr.AccountDailyUsed != 200_000 || *agr.AccountDailyRemaining != 50_000 {
		t.Fatalf("AGR limits %+v", agr)
	}
	if status, code := get(t, bankAPIAs(e, "MB").Limits, "/v1/limits", &mb); status != http.StatusOK {
		t.Fatalf("MB limits: %d %s", status, code)
	}
	if mb.AmountMin != e.cfg.AmountMin || mb.AmountMax != e.cfg.AmountMax || mb.AmountMultiple != e.cfg.NoteUnit {
		t.Fatalf("MB limits %+v", mb)
	}
}

func TestCheckBankLimits(t *testing.T) {
	t.Parallel()
	n := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		l    atmswitch.BankLimits
		ok   bool
	}{
		{"none", atmswitch.BankLimits{}, true},
		{"all", atmswitch.BankLimits{AmountMin: n(100_000), AmountMax: n(5_000_000), AmountMultiple: n(50_000), AccountDailyMax: n(0)}, true},
		{"zero minimum", atmswitch.BankLimits{AmountMin: n(0)}, false},
		{"negative maximum", atmswitch.BankLimits{AmountMax: n(-1)}, false},
		{"maximum below minimum", atmswitch.BankLimits{AmountMin: n(200_000), AmountMax: n(100_000)}, false},
		{"multiple no note pays", atmswitch.BankLimits{AmountMultiple: n(5_000)}, false},
		{"negative daily maximum", atmswitch.BankLimits{AccountDailyMax: n(-5)}, false},
	} {
		if err := atmswitch.CheckBankLimits(tc.l, 10_000); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
