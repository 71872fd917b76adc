package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserFinanceBusinessDay walks the finance page through a business
// day that is over (MB cut at 17:00:00, AGR at 23:59:59): before AGR's
// file the lines await it; a bad file lists every bad line and clears the
// last upload's result; the good file matches; the same file again says
// when it was imported; a file of another bank is refused; closing lists
// what is open and needs a reason, which the day then shows.
func TestBrowserFinanceBusinessDay(t *testing.T) {
	t.Parallel()
	tomorrow := time.Now().In(ict).AddDate(0, 0, 1)
	at := func(dayOffset, h, m, s int) time.Time {
		return time.Date(tomorrow.Year(), tomorrow.Month(), tomorrow.Day()+dayOffset, h, m, s, 0, ict)
	}
	day1 := at(0, 12, 0, 0).Format(time.DateOnly)
	clk := &testClock{}
	clk.set(at(0, 13, 22, 0))
	sys := startSystemAt(t, clk)
	t1 := apiLogin(t, sys, "teller1", "teller1-demo")
	t2 := apiLogin(t, sys, "teller2", "teller2-demo")
	sys.pay(t, t1, mbAn, 500_000)
	sys.pay(t, t2, agrDung, 1_000_000)
	clk.set(at(1, 0, 0, 10)) // day 1 is over for both banks

	dir := t.TempDir()
	write := func(name string, content []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := sys.bankFile(t, "MB", day1)
	goodPath := write("settlement-MB-"+day1+".csv", good)
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	bad := strings.Join(lines[:3], "\n") + "\n" +
		strings.Replace(lines[3], ",500000,", ",-500000,", 1) + "\n" + "1,2,3\n" + lines[3] + "\n"
	badPath := write("settlement-MB-bad.csv", []byte(bad))
	agrPath := write("settlement-AGR-"+day1+".csv", sys.bankFile(t, "AGR", day1))

	b := newBrowser(t)
	b.login(sys.URL, "/finance", "finance", "finance-demo")
	// Day 1 is yesterday for the switch: pick it as finance types it.
	b.waitFor("the day picker", `document.getElementById("day").value !== ""`)
	shownDay := day1[8:10] + "/" + day1[5:7] + "/" + day1[:4]
	eval[bool](b, `(() => { const s = document.getElementById("day-shown"); s.value = "`+shownDay+`";
		s.dispatchEvent(new Event("change")); return true; })()`)
	b.waitFor("day 1's MB row", `document.getElementById("day").value === "`+day1+`" && !!document.querySelector('#banks tr[data-bank="MB"]')`)

	// Before the bank's file: awaiting it, not missing.
	b.do("show AGR's report", chromedp.SetValue(chromedp.ID("recon-bank"), "AGR"), chromedp.Click(chromedp.ID("recon-show")))
	b.waitFor("AGR's lines await the file", `!!document.querySelector('#recon-items tr[data-status="awaiting_bank_file"]')`)
	if n := eval[int](b, `document.querySelectorAll('#recon-items tr[data-status="missing_at_bank"]').length`); n != 0 {
		t.Errorf("%d lines missing at bank before the bank's file", n)
	}
	if got := eval[string](b, `document.querySelector('#recon-items tr[data-status="awaiting_bank_file"] .badge').innerText`); got != "Chờ tệp của ngân hàng" {
		t.Errorf("awaiting_bank_file in words %q", got)
	}
	b.shot("finance-recon-awaiting")

	// A good upload, then a bad file: the old result goes, every bad line
	// is listed.
	b.do("upload AGR's file", chromedp.SetUploadFiles(chromedp.ID("recon-file"), []string{agrPath}), chromedp.Click(chromedp.ID("recon-upload")))
	b.waitFor("AGR's file imported", `document.getElementById("recon-result").textContent.includes("Imported AGR's file")`)
	b.waitFor("AGR's line matched", `!!document.querySelector('#recon-items tr[data-status="matched"]')`)
	b.do("upload a bad MB file", chromedp.SetValue(chromedp.ID("recon-bank"), "MB"),
		chromedp.SetUploadFiles(chromedp.ID("recon-file"), []string{badPath}), chromedp.Click(chromedp.ID("recon-upload")))
	b.waitFor("the bad lines listed", `document.querySelectorAll('#recon-problems li').length === 2`)
	if got := b.text("recon-result"); strings.Contains(got, "Imported") || !strings.Contains(got, "2 bad line(s)") {
		t.Errorf("after a bad file the result says %q", got)
	}
	if got := eval[string](b, `[...document.querySelectorAll('#recon-problems li')].map((li) => li.textContent).join("|")`); !strings.Contains(got, "line 4: amount") || !strings.Contains(got, "line 5: 3 fields") {
		t.Errorf("bad lines %q", got)
	}
	if e := b.errorCode(); e != "settlement_file_invalid" {
		t.Errorf("error %q, want settlement_file_invalid", e)
	}
	b.shot("finance-recon-bad-file")

	// MB's file at AGR is refused; MB's file matches; again, it was imported.
	b.do("upload MB's file as AGR's", chromedp.SetValue(chromedp.ID("recon-bank"), "AGR"),
		chromedp.SetUploadFiles(chromedp.ID("recon-file"), []string{goodPath}), chromedp.Click(chromedp.ID("recon-upload")))
	b.waitFor("another bank's file refused", `document.getElementById("error").dataset.code === "settlement_file_other_bank"`)
	if n := eval[int](b, `document.querySelectorAll('#recon-problems li').length`); n != 0 {
		t.Errorf("%d stale bad lines still shown", n)
	}
	b.do("upload MB's file", chromedp.SetValue(chromedp.ID("recon-bank"), "MB"),
		chromedp.SetUploadFiles(chromedp.ID("recon-file"), []string{goodPath}), chromedp.Click(chromedp.ID("recon-upload")))
	b.waitFor("MB's file imported", `document.getElementById("recon-result").textContent.includes("Imported MB's file")`)
	b.waitFor("MB's line matched", `!!document.querySelector('#recon-items tr[data-status="matched"]')`)
	if n := eval[int](b, `document.querySelectorAll('#recon-items tbody tr:not([data-status="matched"])').length`); n != 0 {
		t.Errorf("%d MB lines not matched", n)
	}
	b.shot("finance-recon-matched")
	b.do("upload MB's file again", chromedp.Click(chromedp.ID("recon-upload")))
	b.waitFor("the file was imported before", `document.getElementById("error").dataset.code === "settlement_file_imported"`)
	// (The import's time is the database's, which is today, not the
	// switch's clock moved to tomorrow.)
	if got := b.text("recon-result"); !strings.Contains(got, "already imported on "+time.Now().In(ict).Format("2006-01-02")) {
		t.Errorf("re-upload says %q, want when it was imported", got)
	}
	b.shot("finance-recon-already-imported")

	// A claim in flight is open: closing lists it and needs a reason.
	// (Put there by hand, its claim running an hour on the switch's clock,
	// so that the sweeper leaves it.)
	wd := sys.createWithdrawal(t, "9704000000000029", 100_000)
	if _, err := sys.Pool.Exec(context.Background(), `UPDATE withdrawals SET state = 'claimed', claimed_by = 'teller1',
		claim_until = $2 WHERE id = $1`, wd.ID, clk.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.do("close day 1", chromedp.Click(chromedp.ID("close-day")))
	b.waitFor("what is open", `document.querySelectorAll('#close-open li').length > 0`)
	if got := b.text("close-open"); !strings.Contains(got, "1 claim(s) in flight") {
		t.Errorf("open items %q", got)
	}
	b.shot("finance-close-open-items")
	b.do("confirm without a reason", chromedp.Click(chromedp.ID("close-day-confirm")))
	b.waitFor("a reason is asked for", `document.getElementById("error").dataset.code === "day_has_open_items"`)
	b.do("give a reason and confirm",
		chromedp.SendKeys(chromedp.ID("close-reason"), "teller1 is paying a code now; checked by phone"),
		chromedp.Click(chromedp.ID("close-day-confirm")))
	b.waitFor("the day shows closed", `document.getElementById("day-status").dataset.closed === "true"`)
	if got := b.text("day-close-reason"); !strings.Contains(got, "checked by phone") || !strings.Contains(got, "claim(s) in flight") {
		t.Errorf("the closed day shows %q, want the reason and what was open", got)
	}
	if e := b.errorCode(); e != "" {
		t.Errorf("the page shows error %q", e)
	}
	b.shot("finance-closed")
}
