package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/softatm/softatm/iso/banksim"
	atmswitch "github.com/softatm/softatm/switch"
)

// TestBrowserKioskCashIn: the kiosk's cash-in mode. A deposit code from the
// bank's app is read by the (fake) camera; the page opens the cash-in step
// (the name, the amount to count), confirms only once the cash is counted,
// and prints a cash-in receipt after the bank credited it. Then, at another
// counter without a camera, a walk-in by account number: the bank names the
// holder, the bank declines the credit, and the page says to hand the cash
// back, with no receipt.
func TestBrowserKioskCashIn(t *testing.T) {
	t.Parallel()
	sys := startSystem(t)
	var dep atmswitch.WithdrawalView
	status, raw := sys.call(t, nil, "POST", "/v1/deposits", sys.bankHeaders(""), map[string]any{
		"account": "9704000000000011", "amount": 500_000, "holder_name": "Nguyen Van An", "phone_last4": "5611"}, &dep)
	if status != http.StatusCreated {
		t.Fatalf("create deposit: %d %s", status, raw)
	}
	y4m := fakeCamera(t, dep.QRPayload)
	b := newBrowser(t,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-video-capture", y4m),
	)
	b.login(sys.URL, "/kiosk", "teller1", "teller1-demo")
	if !eval[bool](b, `document.getElementById("mode-out").getAttribute("aria-pressed") === "true"`) {
		t.Error("the kiosk does not start in cash-out mode")
	}
	b.waitFor("the camera scan opens the cash-in step", shown("deposit-view"))
	if !eval[bool](b, `document.getElementById("mode-in").getAttribute("aria-pressed") === "true"`) {
		t.Error("a deposit code did not switch the kiosk to cash in")
	}
	for id, want := range map[string]string{"deposit-amount": "500.000 ₫", "deposit-holder": "Nguyen Van An"} {
		if got := b.text(id); got != want {
			t.Errorf("#%s shows %q, want %q", id, got, want)
		}
	}
	if got := sys.state(t, dep.ID); got != "at_counter" {
		t.Errorf("after the scan the deposit is %q", got)
	}
	if !eval[bool](b, `document.getElementById("deposit-confirm").disabled`) {
		t.Error("Confirm is enabled before the cash is counted")
	}
	b.do("tick counted", chromedp.Click(chromedp.ID("cash-counted")))
	b.shot("kiosk-cash-in")
	b.do("confirm the deposit", chromedp.Click(chromedp.ID("deposit-confirm")))
	b.waitFor("the cash-in receipt", shown("receipt"))
	if got := b.text("receipt-kind"); got != "Nạp tiền mặt vào tài khoảnCash in (deposit)" {
		t.Errorf("receipt kind %q", got)
	}
	if got := b.text("receipt-title"); !strings.Contains(got, "Biên nhận nạp tiền") {
		t.Errorf("receipt title %q", got)
	}
	if got := b.text("receipt-amount"); got != "500.000 ₫" {
		t.Errorf("receipt amount %q", got)
	}
	if got := sys.state(t, dep.ID); got != "credited" {
		t.Fatalf("after confirm the deposit is %q", got)
	}
	b.shot("kiosk-cash-in-receipt")
	// My day counts it, and reprints it.
	b.waitFor("My day counts the deposit", `document.getElementById("till-deposit-count").textContent === "1"`)
	if got := b.text("till-cash-in"); got != "500.000 ₫" {
		t.Errorf("My day's cash in %q", got)
	}
	b.do("next customer", chromedp.Click(chromedp.ID("next")))
	reprint := `#till-payouts button.reprint[data-deposit="` + dep.ID.String() + `"]`
	b.waitFor("the deposit's reprint button", `!!document.querySelector('`+reprint+`')`)
	b.do("reprint the deposit", chromedp.Click(chromedp.CSS(reprint)))
	b.waitFor("the reprinted cash-in receipt", shown("receipt")+` && document.getElementById("receipt").dataset.kind === "cash_in"`)
	if !b.eval(shown("receipt-reprint")) {
		t.Error("a deposit's reprint is not marked as one")
	}

	// A walk-in at LS-002, no camera: the teller types the account.
	sys.Sim.SetFault("9704050000000015", banksim.Fault{})
	w := newBrowser(t)
	w.login(sys.URL, "/kiosk", "teller2", "teller2-demo")
	w.do("cash-in mode", chromedp.Click(chromedp.ID("mode-in")))
	w.waitFor("the walk-in form", shown("walkin"))
	w.do("type the account and amount",
		chromedp.SendKeys(chromedp.ID("walkin-account"), "9704050000000015"),
		chromedp.SendKeys(chromedp.ID("walkin-amount"), "300000"),
		chromedp.Click(chromedp.ID("walkin-submit")),
	)
	w.waitFor("the holder's name", shown("deposit-view"))
	if got := w.text("deposit-holder"); got != "HOANG THI DUNG" {
		t.Errorf("walk-in holder %q", got)
	}
	w.shot("kiosk-cash-in-walk-in")
	sys.Sim.SetFault("9704050000000015", banksim.Fault{Kind: banksim.FaultUnavailable})
	w.do("count and confirm", chromedp.Click(chromedp.ID("cash-counted")), chromedp.Click(chromedp.ID("deposit-confirm")))
	w.waitFor("hand the cash back", shown("deposit-handback"))
	if got := w.errorCode(); got != "deposit_not_taken" {
		t.Errorf("error %q, want deposit_not_taken", got)
	}
	if w.eval(shown("receipt")) || w.eval(shown("deposit-confirm")) {
		t.Error("a declined deposit shows a receipt or a confirm button")
	}
	w.shot("kiosk-cash-in-hand-back")
	var state string
	if err := sys.Pool.QueryRow(t.Context(), `SELECT state FROM withdrawals WHERE kind = 'deposit' AND post_office = 'LS-002'`).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "credit_declined" {
		t.Errorf("the declined walk-in is %q", state)
	}
	// Finance sees the day's cash in per bank and per post office.
	f := newBrowser(t)
	f.login(sys.URL, "/finance", "finance", "finance-demo")
	f.waitFor("MB's cash in", `(function(){const c=document.querySelector('#banks tr[data-bank="MB"] td.cash-in'); return !!c && c.textContent === "500.000 ₫"})()`)
	f.waitFor("LS-001's cash in", `(function(){const c=document.querySelector('tr[data-post-office="LS-001"] td.cash-in'); return !!c && c.textContent === "500.000 ₫"})()`)
	f.shot("finance-cash-in")
}

// eval is eval[bool] as a method, for the tests that read many flags.
func (b *browser) eval(expr string) bool { return eval[bool](b, expr) }

// TestBrowserDemoDepositCode: the demo app makes a deposit code (QR and
// numeric); a teller takes the cash for it by its numeric code; the app
// follows it to credited.
func TestBrowserDemoDepositCode(t *testing.T) {
	t.Parallel()
	sys := startSystem(t)
	b := newBrowser(t)
	b.do("open the demo app",
		chromedp.Navigate(sys.URL+"/demo/app"),
		chromedp.WaitVisible(chromedp.ID("create-deposit")),
	)
	b.waitFor("the accounts load", `document.querySelectorAll("#account option").length > 0`)
	b.do("ask for a deposit code",
		chromedp.SetValue(chromedp.ID("account"), "9704000000000011"),
		chromedp.Click(chromedp.CSS(`[data-amount="2000000"]`)),
		chromedp.Click(chromedp.ID("create-deposit")),
	)
	b.waitFor("the code shows", shown("code-view"))
	b.waitFor("the QR image loads", `(function(){const i=document.getElementById("qr"); return i.complete && i.naturalWidth > 100})()`)
	b.waitFor("status deposit_issued", `document.getElementById("status").dataset.state === "deposit_issued"`)
	numeric := strings.ReplaceAll(b.text("numeric-code"), " ", "")
	if len(numeric) != 12 {
		t.Fatalf("numeric code %q", numeric)
	}
	b.shot("demo-deposit-code")

	teller := apiLogin(t, sys, "teller1", "teller1-demo")
	var scan struct {
		Kind string `json:"kind"`
		ID   string `json:"withdrawal_id"`
	}
	teller.post(t, "/v1/teller/scan", map[string]string{"numeric": numeric, "phone_last4": "5611"}, &scan)
	if scan.Kind != "deposit" {
		t.Fatalf("the numeric code scanned as %q", scan.Kind)
	}
	teller.post(t, "/v1/teller/deposits/confirm", map[string]any{"deposit_id": scan.ID, "cash_counted": true}, nil)
	b.waitFor("status credited", `document.getElementById("status").dataset.state === "credited"`)
	b.shot("demo-deposit-credited")
}
