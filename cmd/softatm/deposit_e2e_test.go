package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm/iso/banksim"
	atmswitch "github.com/softatm/softatm/switch"
)

type depositScan struct {
	Kind       string    `json:"kind"`
	ID         uuid.UUID `json:"withdrawal_id"`
	Amount     int64     `json:"amount"`
	HolderName string    `json:"holder_name"`
	IDRequired bool      `json:"id_required"`
}

type depositReceipt struct {
	Kind      string `json:"kind"`
	Amount    int64  `json:"amount"`
	ReceiptNo string `json:"receipt_no"`
	Bank      string `json:"bank"`
	PO        string `json:"post_office"`
	Approval  string `json:"verification_code"`
	Date      string `json:"business_date"`
}

func (s *system) balanceOf(t *testing.T, account string) int64 {
	t.Helper()
	a, ok := s.Sim.Account(account)
	if !ok {
		t.Fatalf("no account %s", account)
	}
	return a.Balance
}

// TestEndToEndDeposits runs cash in through the real program: an app's
// deposit code and a walk-in, at two post offices and for two banks; a
// decline; a credit whose 0210 comes too late (reversed); a large-cash
// deposit that needs the ID number and shows in finance's report; and
// `softatm admin check` holds at the end.
func TestEndToEndDeposits(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *ServeConfig) {
		c.Switch.CreditTimeout = 300 * time.Millisecond
		c.Switch.LargeCashThreshold = 5_000_000
	})
	const (
		mbAcct      = "9704000000000011"
		agrAcct     = "9704050000000015"
		agrBlocked  = "9704050000000031"
		mbLateAcct  = "9704000000000029"
		idNumberOne = "001089012345"
	)
	mb, agr := s.balanceOf(t, mbAcct), s.balanceOf(t, agrAcct)

	// The MB app's deposit code.
	var code atmswitch.WithdrawalView
	status, raw := s.call(t, nil, "POST", "/v1/deposits", s.bankHeaders(""), map[string]any{
		"account": mbAcct, "amount": 500_000, "holder_name": "Nguyen Van An", "phone_last4": "5611"}, &code)
	if status != http.StatusCreated || code.Kind != atmswitch.KindDeposit || code.State != atmswitch.StateDepIssued ||
		code.QRPayload == "" || len(code.NumericCode) != 12 || code.QRPNG == "" {
		t.Fatalf("create deposit: %d %s", status, raw)
	}
	teller1 := s.login(t, "teller1", "teller1-demo")
	var scan depositScan
	status, raw = s.call(t, teller1.c, "POST", "/v1/teller/scan", teller1.headers(""), map[string]string{"qr": code.QRPayload}, &scan)
	if status != 200 || scan.Kind != "deposit" || scan.Amount != 500_000 || scan.HolderName == "" || scan.IDRequired {
		t.Fatalf("scan: %d %s", status, raw)
	}
	status, _ = s.call(t, teller1.c, "POST", "/v1/teller/deposits/confirm", teller1.headers(""), map[string]any{"deposit_id": scan.ID}, nil)
	if status != http.StatusBadRequest || s.state(t, scan.ID) != "at_counter" {
		t.Fatalf("confirm without counting: %d, %s", status, s.state(t, scan.ID))
	}
	key := uuid.NewString()
	body := map[string]any{"deposit_id": scan.ID, "cash_counted": true}
	var rc depositReceipt
	status, first := s.call(t, teller1.c, "POST", "/v1/teller/deposits/confirm", teller1.headers(key), body, &rc)
	if status != 200 || rc.Kind != "cash_in" || rc.Amount != 500_000 || rc.PO != "LS-001" || rc.Bank != "MB" || rc.ReceiptNo == "" ||
		rc.Approval == "" || rc.Date == "" || rc.Date == "1970-01-01" {
		t.Fatalf("confirm: %d %s", status, first)
	}
	status, again := s.call(t, teller1.c, "POST", "/v1/teller/deposits/confirm", teller1.headers(key), body, nil)
	if status != 200 || !bytes.Equal(first, again) {
		t.Fatalf("replayed confirm: %d %s", status, again)
	}
	// The same confirm once its idempotency record is gone (a 5xx answer,
	// deposit_outcome_unknown, keeps none) is answered from the deposit
	// its key is bound to: the same receipt.
	if _, err := s.Pool.Exec(context.Background(), `DELETE FROM idempotency_keys WHERE key = $1`, key); err != nil {
		t.Fatal(err)
	}
	status, again = s.call(t, teller1.c, "POST", "/v1/teller/deposits/confirm", teller1.headers(key), body, nil)
	if status != 200 || !bytes.Equal(first, again) {
		t.Fatalf("the same confirm without its idempotency record: %d %s, want the first receipt %s", status, again, first)
	}
	var e apiError
	status, _ = s.call(t, teller1.c, "POST", "/v1/teller/deposits/confirm", teller1.headers(""), body, &e)
	if status != http.StatusConflict || e.Error.Code != "code_already_used" {
		t.Fatalf("second confirm: %d %+v", status, e)
	}
	status, _ = s.call(t, teller1.c, "GET", "/v1/teller/deposits/"+scan.ID.String()+"/receipt", nil, nil, &rc)
	if status != 200 || rc.Kind != "cash_in" {
		t.Fatalf("reprint: %d %+v", status, rc)
	}

	// A walk-in at another post office, for the other bank.
	teller2 := s.login(t, "teller2", "teller2-demo")
	var holder atmswitch.AccountHolder
	status, raw = s.call(t, teller2.c, "POST", "/v1/teller/deposits/lookup", teller2.headers(""), map[string]string{"account": agrAcct}, &holder)
	if status != 200 || holder.HolderName != "HOANG THI DUNG" || holder.Bank != "AGR" {
		t.Fatalf("lookup: %d %s", status, raw)
	}
	status, _ = s.call(t, teller2.c, "POST", "/v1/teller/deposits/lookup", teller2.headers(""), map[string]string{"account": agrBlocked}, &e)
	if status != http.StatusPaymentRequired || e.Error.Code != "declined" {
		t.Fatalf("lookup of a blocked account: %d %+v", status, e)
	}
	status, raw = s.call(t, teller2.c, "POST", "/v1/teller/deposits/walkin", teller2.headers(""),
		map[string]any{"account": agrAcct, "amount": 6_000_000}, &scan)
	if status != 200 || scan.Kind != "deposit" || scan.HolderName != "HOANG THI DUNG" || !scan.IDRequired {
		t.Fatalf("walk-in: %d %s", status, raw)
	}
	status, _ = s.call(t, teller2.c, "POST", "/v1/teller/deposits/confirm", teller2.headers(""),
		map[string]any{"deposit_id": scan.ID, "cash_counted": true}, &e)
	if status != http.StatusUnprocessableEntity || e.Error.Code != "id_number_required" {
		t.Fatalf("large cash without an ID: %d %+v", status, e)
	}
	status, raw = s.call(t, teller2.c, "POST", "/v1/teller/deposits/confirm", teller2.headers(""),
		map[string]any{"deposit_id": scan.ID, "cash_counted": true, "id_number": idNumberOne}, &rc)
	if status != 200 || rc.PO != "LS-002" || rc.Bank != "AGR" {
		t.Fatalf("walk-in confirm: %d %s", status, raw)
	}
	walkInID := scan.ID

	// The bank answers too late: the cash goes back and the credit is
	// reversed.
	late := s.balanceOf(t, mbLateAcct)
	status, raw = s.call(t, nil, "POST", "/v1/deposits", s.bankHeaders(""), map[string]any{
		"account": mbLateAcct, "amount": 300_000, "holder_name": "Tran Thi Binh", "phone_last4": "5629"}, &code)
	if status != http.StatusCreated {
		t.Fatalf("create deposit: %d %s", status, raw)
	}
	status, raw = s.call(t, teller1.c, "POST", "/v1/teller/scan", teller1.headers(""), map[string]string{"qr": code.QRPayload}, &scan)
	if status != 200 {
		t.Fatalf("scan: %d %s", status, raw)
	}
	s.Sim.SetFault(mbLateAcct, banksim.Fault{Kind: banksim.FaultLate, DelayMs: 1000})
	status, _ = s.call(t, teller1.c, "POST", "/v1/teller/deposits/confirm", teller1.headers(""),
		map[string]any{"deposit_id": scan.ID, "cash_counted": true}, &e)
	if status != http.StatusPaymentRequired || e.Error.Code != "deposit_not_taken" {
		t.Fatalf("late credit: %d %+v", status, e)
	}
	time.Sleep(1200 * time.Millisecond) // the late 0210 comes and is kept nowhere
	s.Sim.SetFault(mbLateAcct, banksim.Fault{})
	eventually(t, "the late credit reversed", func() bool { return s.balanceOf(t, mbLateAcct) == late })
	if st := s.state(t, scan.ID); st != "credit_failed" {
		t.Fatalf("late deposit is %s", st)
	}

	if got := s.balanceOf(t, mbAcct); got != mb+500_000 {
		t.Fatalf("MB account %d, want %d", got, mb+500_000)
	}
	if got := s.balanceOf(t, agrAcct); got != agr+6_000_000 {
		t.Fatalf("AGR account %d, want %d", got, agr+6_000_000)
	}

	// Finance's large-cash report shows the walk-in with its ID number.
	fin := s.login(t, "finance", "finance-demo")
	var rep struct {
		Deposits []struct {
			DepositID uuid.UUID `json:"deposit_id"`
			IDNumber  string    `json:"id_number"`
			Amount    int64     `json:"amount"`
		} `json:"deposits"`
	}
	status, raw = s.call(t, fin.c, "GET", "/v1/finance/large-cash?from=2000-01-01&to=2999-12-31", nil, nil, &rep)
	if status != 200 || len(rep.Deposits) != 1 || rep.Deposits[0].DepositID != walkInID || rep.Deposits[0].IDNumber != idNumberOne {
		t.Fatalf("large-cash report: %d %s", status, raw)
	}
	status, _ = s.call(t, teller1.c, "GET", "/v1/finance/large-cash?from=2000-01-01", nil, nil, nil)
	if status != http.StatusForbidden {
		t.Fatalf("a teller read the large-cash report: %d", status)
	}

	// A withdrawal at the same counter: the day's settlement nets MB's
	// deposits against its withdrawals and shows both gross figures.
	wd := s.createWithdrawal(t, mbAcct, 400_000)
	status, raw = s.call(t, teller1.c, "POST", "/v1/teller/scan", teller1.headers(""), map[string]string{"qr": wd.QRPayload}, nil)
	if status != 200 {
		t.Fatalf("scan withdrawal: %d %s", status, raw)
	}
	status, raw = s.call(t, teller1.c, "POST", "/v1/teller/confirm", teller1.headers(""),
		map[string]any{"withdrawal_id": wd.ID, "id_checked": true}, nil)
	if status != 200 {
		t.Fatalf("confirm withdrawal: %d %s", status, raw)
	}
	day, err := s.Main.Ledger.BusinessDate(t.Context(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var settled struct {
		Banks []struct {
			Bank                       string
			Gross, Fees, Deposits, Net int64
			DepositCount               int64 `json:"deposit_count"`
		} `json:"banks"`
		PostOffices []struct {
			PostOffice string `json:"post_office"`
			CashOut    int64  `json:"cash_out"`
			CashIn     int64  `json:"cash_in"`
		} `json:"post_offices"`
	}
	status, raw = s.call(t, fin.c, "GET", "/v1/finance/days/"+day.Format(time.DateOnly)+"/settlement", nil, nil, &settled)
	if status != 200 {
		t.Fatalf("settlement: %d %s", status, raw)
	}
	nets := map[string]string{}
	for _, b := range settled.Banks {
		nets[b.Bank] = fmt.Sprintf("gross %d fees %d deposits %d (%d) net %d", b.Gross, b.Fees, b.Deposits, b.DepositCount, b.Net)
	}
	for bank, want := range map[string]string{
		"MB":  "gross 400000 fees 0 deposits 500000 (1) net -100000",
		"AGR": "gross 0 fees 0 deposits 6000000 (1) net -6000000",
	} {
		if nets[bank] != want {
			t.Errorf("settlement of %s: %s, want %s", bank, nets[bank], want)
		}
	}
	for _, p := range settled.PostOffices {
		if p.PostOffice == "LS-001" && (p.CashIn != 500_000 || p.CashOut != 400_000) {
			t.Errorf("LS-001: cash in %d, out %d", p.CashIn, p.CashOut)
		}
	}
	if err := check(t.Context(), s.Pool); err != nil {
		t.Fatal(err)
	}

	// Each bank's settlement file lists its deposits beside its payouts
	// (the late credit the switch reversed is in neither book); recon
	// matches every line of both.
	s.waitState(t, wd.ID, "completed")
	finAPI := apiLogin(t, s, "finance", "finance-demo")
	date := day.Format(time.DateOnly)
	for bank, lines := range map[string]int{"MB": 2, "AGR": 1} {
		if status, code, msg := finAPI.upload(t, "", s.bankFile(t, bank, date)); status != http.StatusOK {
			t.Fatalf("%s's file: %d %s %s", bank, status, code, msg)
		}
		rep := finAPI.report(t, bank, date)
		if len(rep) != lines {
			t.Errorf("%s's recon: %v, want %d lines", bank, rep, lines)
		}
		for rrn, st := range rep {
			if fmt.Sprint(st) != "[matched]" {
				t.Errorf("%s's recon line %s: %v, want matched", bank, rrn, st)
			}
		}
	}

	// The operator sets LS-003's cash cap (it holds 1,000,000): a deposit
	// that would go over it is refused before the cash is counted.
	if err := runAdmin(t.Context(), []string{"post-office", "-database", s.Main.Config.DatabaseURL, "-code", "LS-003",
		"-name", "Buu dien Van Quan", "-cash-cap", "1200000"}); err != nil {
		t.Fatal(err)
	}
	teller3 := s.login(t, "teller3", "teller3-demo")
	status, _ = s.call(t, teller3.c, "POST", "/v1/teller/deposits/walkin", teller3.headers(""),
		map[string]any{"account": agrAcct, "amount": 300_000}, &e)
	if status != http.StatusConflict || e.Error.Code != "till_cash_cap" {
		t.Fatalf("a deposit over the cash cap: %d %+v", status, e)
	}
	status, raw = s.call(t, teller3.c, "POST", "/v1/teller/deposits/walkin", teller3.headers(""),
		map[string]any{"account": agrAcct, "amount": 200_000}, &scan)
	if status != 200 {
		t.Fatalf("a deposit up to the cash cap: %d %s", status, raw)
	}
}
