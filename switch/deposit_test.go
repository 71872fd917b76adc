package atmswitch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
	"github.com/softatm/softatm/ledger"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/code"
)

// acctUnknownMB is in MB's range but not at the bank.
const acctUnknownMB = "9704000000009999"

func (e *env) depositCode(t *testing.T, bank, account string, amount int64) atmswitch.Issued {
	t.Helper()
	is, err := e.svc.CreateDeposit(context.Background(), bank, atmswitch.DepositRequest{Account: account, Amount: amount,
		Currency: "VND", HolderName: "Nguyen Van An", PhoneLast4: phoneRich})
	if err != nil {
		t.Fatalf("create deposit: %v", err)
	}
	return is
}

// counted is a deposit code of acctRich for amount, scanned at tl's counter
// (the cash counted), through svc.
func (e *env) counted(t *testing.T, svc *atmswitch.Service, tl atmswitch.Teller, amount int64) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	is, err := svc.CreateDeposit(ctx, "MB", atmswitch.DepositRequest{Account: acctRich, Amount: amount,
		Currency: "VND", HolderName: "Nguyen Van An", PhoneLast4: phoneRich})
	if err != nil {
		t.Fatalf("create deposit: %v", err)
	}
	w, err := svc.Scan(ctx, tl, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	return w.ID
}

// confirmAtOnce confirms deposits ids[i] at tellers[i]'s counters at the
// same moment, without ID numbers, and returns each confirm's error.
func (e *env) confirmAtOnce(tellers []atmswitch.Teller, ids []uuid.UUID) []error {
	errs := make([]error, len(tellers))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, tl := range tellers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = e.svc.ConfirmDeposit(context.Background(), tl, ids[i], "")
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func (e *env) balance(t *testing.T, account string) int64 {
	t.Helper()
	a, ok := e.sim.Account(account)
	if !ok {
		t.Fatalf("no account %s", account)
	}
	return a.Balance
}

func (e *env) accountBalance(t *testing.T, code string) (debits, credits int64) {
	t.Helper()
	a, err := e.ledger.Account(context.Background(), code)
	if err != nil {
		t.Fatal(err)
	}
	return a.DebitsPosted, a.CreditsPosted
}

// tillCashOf is the cash a post office's till holds, by the ledger.
func (e *env) tillCashOf(t *testing.T, po string) int64 {
	t.Helper()
	d, c := e.accountBalance(t, ledger.TillCode(po))
	return d - c
}

// transfersOf counts the ledger's transfers naming a record.
func (e *env) transfersOf(t *testing.T, id uuid.UUID) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM transfers WHERE withdrawal_id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDepositWithAppCode: the app's deposit code is scanned (QR, then
// numeric for a second one), the cash counted and confirmed: the 0200 goes
// online, the bank credits the account, the till is debited and the bank's
// payable credited, once; the code is then spent.
func TestDepositWithAppCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	before, till := e.balance(t, acctRich), e.tillCashOf(t, "LS-001")

	is := e.depositCode(t, "MB", acctRich, 700_000)
	if is.Withdrawal.Kind != atmswitch.KindDeposit || is.Withdrawal.State != atmswitch.StateDepIssued || !code.ValidNumeric(is.Numeric) {
		t.Fatalf("issued %+v numeric %q", is.Withdrawal, is.Numeric)
	}
	p, err := e.codes.Verify(ctx, is.Withdrawal.QRPayload)
	if err != nil || !p.IsDeposit() || p.WithdrawalID != is.Withdrawal.ID {
		t.Fatalf("the code %+v, %v is not a deposit code", p, err)
	}
	if e.balance(t, acctRich) != before || e.sim.Received(iso.MTIFinancialRequest) != 0 {
		t.Fatal("a deposit code moved money at the bank before any cash was counted")
	}
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	if w.Kind != atmswitch.KindDeposit || w.State != atmswitch.StateDepCounter || w.HolderName != "Nguyen Van An" {
		t.Fatalf("scan: %+v", w)
	}
	// Only the teller holding it confirms.
	_, err = e.svc.ConfirmDeposit(ctx, teller2, w.ID, "")
	wantCode(t, err, softatm.ECodeClaimed)
	// A withdrawal's confirm does not take a deposit.
	if _, err := e.svc.Confirm(ctx, teller1, w.ID); err == nil {
		t.Fatal("a withdrawal's confirm paid a deposit")
	}
	rc, err := e.svc.ConfirmDeposit(ctx, teller1, w.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	d := rc.Withdrawal
	if d.State != atmswitch.StateDepCredited || d.Amount != 700_000 || d.PostOffice != "LS-001" || d.ApprovalCode == "" ||
		rc.TellerName != "" && rc.TellerName != "teller1" {
		t.Fatalf("receipt %+v", rc)
	}
	if got := e.balance(t, acctRich); got != before+700_000 {
		t.Fatalf("bank balance %d, want %d", got, before+700_000)
	}
	if got := e.tillCashOf(t, "LS-001"); got != till+700_000 {
		t.Fatalf("till %d, want %d", got, till+700_000)
	}
	if _, c := e.accountBalance(t, ledger.PayableCode("MB")); c != 700_000 {
		t.Fatalf("MB's payable credited %d, want 700000", c)
	}
	// Used once.
	_, err = e.svc.ConfirmDeposit(ctx, teller1, w.ID, "")
	wantCode(t, err, softatm.ECodeUsed)
	_, err = e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeUsed)
	if e.transfersOf(t, w.ID) != 1 || e.sim.Received(iso.MTIFinancialRequest) != 1 {
		t.Fatalf("%d transfers, %d 0200s", e.transfersOf(t, w.ID), e.sim.Received(iso.MTIFinancialRequest))
	}

	// The numeric fallback works for a deposit code too.
	is2 := e.depositCode(t, "MB", acctRich, 300_000)
	w2, err := e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{Numeric: is2.Numeric, PhoneLast4: phoneRich})
	if err != nil || w2.ID != is2.Withdrawal.ID || w2.Kind != atmswitch.KindDeposit {
		t.Fatalf("numeric scan: %+v, %v", w2, err)
	}
	if _, err := e.svc.ConfirmDeposit(ctx, teller2, w2.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got := e.tillCashOf(t, "LS-001"); got != till+1_000_000 {
		t.Fatalf("till %d, want %d", got, till+1_000_000)
	}
	day, err := e.svc.Till(ctx, teller1)
	if err != nil {
		t.Fatal(err)
	}
	if day.DepositCount != 2 || day.CashIn != 1_000_000 || len(day.Deposits) != 2 || day.Deposits[0].WithdrawalID != w2.ID ||
		day.Count != 0 || day.Cash != till+1_000_000 {
		t.Fatalf("the teller's day: %+v", day)
	}
	e.checkLedger(t)
}

// TestDepositWalkIn: the teller types the account; the bank names its
// holder; the deposit is claimed by that teller and credited on confirm.
func TestDepositWalkIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	h, err := e.svc.LookupAccount(ctx, teller3, acctLimit)
	if err != nil || h.HolderName != "PHAM VAN EM" || h.Bank != "AGR" || h.AccountMasked != iso.Mask(acctLimit) {
		t.Fatalf("lookup: %+v, %v", h, err)
	}
	_, err = e.svc.LookupAccount(ctx, teller3, acctUnknownMB)
	wantCode(t, err, softatm.EUnknownAccount)
	_, err = e.svc.LookupAccount(ctx, teller3, "1234567890")
	wantCode(t, err, softatm.EUnknownAccount)
	// A bank that answers with markup for a name: refused, nothing shown
	// on the kiosk, no walk-in recorded.
	_, err = e.svc.LookupAccount(ctx, teller3, acctMarkup)
	wantCode(t, err, softatm.EBankReplyInvalid)
	_, err = e.svc.StartWalkIn(ctx, teller3, atmswitch.WalkInRequest{Account: acctMarkup, Amount: 100_000})
	wantCode(t, err, softatm.EBankReplyInvalid)
	_, err = e.svc.StartWalkIn(ctx, teller3, atmswitch.WalkInRequest{Account: acctBlock, Amount: 100_000})
	wantCode(t, err, softatm.EDeclined)

	before := e.balance(t, acctLimit)
	w, err := e.svc.StartWalkIn(ctx, teller3, atmswitch.WalkInRequest{Account: acctLimit, Amount: 2_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if w.State != atmswitch.StateDepCounter || w.HolderName != "PHAM VAN EM" || w.Bank != "AGR" || w.QRPayload != "" {
		t.Fatalf("walk-in %+v", w)
	}
	rc, err := e.svc.ConfirmDeposit(ctx, teller3, w.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Withdrawal.PostOffice != "LS-003" || rc.BankName != "Agribank" {
		t.Fatalf("receipt %+v", rc)
	}
	if got := e.balance(t, acctLimit); got != before+2_000_000 {
		t.Fatalf("balance %d, want %d", got, before+2_000_000)
	}
	if _, c := e.accountBalance(t, ledger.PayableCode("AGR")); c != 2_000_000 {
		t.Fatalf("AGR's payable credited %d", c)
	}
	e.checkLedger(t)
}

// TestDepositDeclined: the bank says no: nothing is posted, the teller is
// told to hand the cash back, and the code is spent.
func TestDepositDeclined(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	till := e.tillCashOf(t, "LS-001")
	is := e.depositCode(t, "MB", acctRich, 400_000)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultUnavailable})
	_, err = e.svc.ConfirmDeposit(ctx, teller1, w.ID, "")
	wantCode(t, err, softatm.EDepositNotTaken)
	if s := e.state(t, w.ID); s != atmswitch.StateDepDeclined {
		t.Fatalf("state %s", s)
	}
	if e.tillCashOf(t, "LS-001") != till || e.transfersOf(t, w.ID) != 0 {
		t.Fatal("a declined deposit was posted")
	}
	e.sim.ClearFaults()
	_, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeCancelled)
	e.checkLedger(t)
}

// TestDepositTimeoutReversed: no 0210 in time: the deposit fails, the
// teller hands the cash back, and the queued 0420 debits back what the
// bank credited when the 0200 did arrive. The late 0210 is kept nowhere.
func TestDepositTimeoutReversed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.CreditTimeout = 200 * time.Millisecond })
	ctx := context.Background()
	before, till := e.balance(t, acctRich), e.tillCashOf(t, "LS-001")
	is := e.depositCode(t, "MB", acctRich, 900_000)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultLate, DelayMs: 600})
	_, err = e.svc.ConfirmDeposit(ctx, teller1, w.ID, "")
	wantCode(t, err, softatm.EDepositNotTaken)
	if s := e.state(t, w.ID); s != atmswitch.StateDepFailed {
		t.Fatalf("state %s", s)
	}
	// The bank credited it all the same (its reply was only late).
	if got := e.balance(t, acctRich); got != before+900_000 {
		t.Fatalf("the simulator did not credit the late deposit: %d", got)
	}
	time.Sleep(700 * time.Millisecond) // the late 0210 arrives and is dropped
	e.sim.ClearFaults()
	e.drain(t)
	if got := e.balance(t, acctRich); got != before {
		t.Fatalf("after the reversal the account holds %d, want %d", got, before)
	}
	if e.sim.Received(iso.MTIReversal) != 1 {
		t.Fatalf("%d 0420s", e.sim.Received(iso.MTIReversal))
	}
	if e.tillCashOf(t, "LS-001") != till || e.transfersOf(t, w.ID) != 0 {
		t.Fatal("a deposit without an answer was posted")
	}
	e.checkLedger(t)
}

// TestDepositLateApprovalAfterSweep: the sweeper fails a credit still
// waiting (as after a crash), then the bank's approval arrives: it is not
// kept (nothing posted, no receipt) and the 0420 reverses it at the bank.
func TestDepositLateApprovalAfterSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) {
		c.CreditTimeout, c.CreditingMax, c.ClockSkew = 3*time.Second, 50*time.Millisecond, 0
	})
	ctx := context.Background()
	before, till := e.balance(t, acctRich), e.tillCashOf(t, "LS-001")
	is := e.depositCode(t, "MB", acctRich, 600_000)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultDelay, DelayMs: 800})
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.ConfirmDeposit(ctx, teller1, w.ID, "")
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.state(t, w.ID) != atmswitch.StateDepCrediting {
		if time.Now().After(deadline) {
			t.Fatal("never crediting")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.state(t, w.ID); s != atmswitch.StateDepFailed {
		t.Fatalf("after the sweep: %s", s)
	}
	wantCode(t, <-done, softatm.EDepositNotTaken)
	if e.tillCashOf(t, "LS-001") != till || e.transfersOf(t, w.ID) != 0 || e.state(t, w.ID) != atmswitch.StateDepFailed {
		t.Fatal("a late approval was kept")
	}
	e.sim.ClearFaults()
	e.drain(t)
	if got := e.balance(t, acctRich); got != before {
		t.Fatalf("the late approval was not reversed: %d, want %d", got, before)
	}
	e.checkLedger(t)
}

// TestDepositReplyLies: a 0210 that states another amount (or account, RRN,
// currency, processing code) is no approval: nothing is posted, the cash is
// handed back, and the 0420 reverses whatever the bank booked.
func TestDepositReplyLies(t *testing.T) {
	t.Parallel()
	for _, lie := range []string{banksim.FaultReplyAmount, banksim.FaultReplyAccount, banksim.FaultReplyRRN,
		banksim.FaultReplyProc} {
		t.Run(lie, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			before, till := e.balance(t, acctRich), e.tillCashOf(t, "LS-001")
			is := e.depositCode(t, "MB", acctRich, 800_000)
			w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
			if err != nil {
				t.Fatal(err)
			}
			e.sim.SetMTIFault(iso.MTIFinancialRequest, banksim.Fault{Kind: lie})
			_, err = e.svc.ConfirmDeposit(ctx, teller1, w.ID, "")
			wantCode(t, err, softatm.EDepositNotTaken)
			if s := e.state(t, w.ID); s != atmswitch.StateDepFailed {
				t.Fatalf("state %s", s)
			}
			if e.tillCashOf(t, "LS-001") != till || e.transfersOf(t, w.ID) != 0 {
				t.Fatal("a lying 0210 was posted")
			}
			e.sim.ClearFaults()
			e.drain(t)
			if got := e.balance(t, acctRich); got != before {
				t.Fatalf("after the reversal the account holds %d, want %d", got, before)
			}
			e.checkLedger(t)
		})
	}
}

// TestDepositLimits: per deposit, per account per 24 hours, and the
// till's cash cap, each refused before any cash is counted (nothing
// claimed, nothing sent).
func TestDepositLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.DepositAccountDailyMax = 1_000_000 })
	ctx := context.Background()
	_, err := e.svc.CreateDeposit(ctx, "MB", atmswitch.DepositRequest{Account: acctRich, Amount: e.cfg.DepositMax + 10_000,
		PhoneLast4: phoneRich, HolderName: "A"})
	wantCode(t, err, softatm.EInvalidAmount)
	_, err = e.svc.CreateDeposit(ctx, "AGR", atmswitch.DepositRequest{Account: acctRich, Amount: 100_000,
		PhoneLast4: phoneRich, HolderName: "A"})
	wantCode(t, err, softatm.EAccountNotOfBank)
	_, err = e.svc.StartWalkIn(ctx, teller1, atmswitch.WalkInRequest{Account: acctRich, Amount: 12_345})
	wantCode(t, err, softatm.EInvalidAmount)

	first := e.depositCode(t, "MB", acctRich, 800_000)
	second := e.depositCode(t, "MB", acctRich, 300_000) // issued while under the limit
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: first.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ConfirmDeposit(ctx, teller1, w.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: second.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ELimit)
	if s := e.state(t, second.Withdrawal.ID); s != atmswitch.StateDepIssued {
		t.Fatalf("a refused deposit is %s", s)
	}
	_, err = e.svc.CreateDeposit(ctx, "MB", atmswitch.DepositRequest{Account: acctRich, Amount: 300_000,
		PhoneLast4: phoneRich, HolderName: "A"})
	wantCode(t, err, softatm.ELimit)

	// The till's cap: LS-003 holds smallTill; its cap leaves room for
	// 200,000 more.
	if _, err := e.pool.Exec(ctx, `UPDATE post_offices SET cash_cap = $1 WHERE code = 'LS-003'`, smallTill+200_000); err != nil {
		t.Fatal(err)
	}
	over := e.depositCode(t, "AGR", acctLimit, 300_000)
	_, err = e.svc.Scan(ctx, teller3, atmswitch.ScanRequest{QR: over.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ETillFull)
	if s := e.state(t, over.Withdrawal.ID); s != atmswitch.StateDepIssued {
		t.Fatalf("a deposit over the cap is %s", s)
	}
	_, err = e.svc.StartWalkIn(ctx, teller3, atmswitch.WalkInRequest{Account: acctLimit, Amount: 300_000})
	wantCode(t, err, softatm.ETillFull)
	fits, err := e.svc.StartWalkIn(ctx, teller3, atmswitch.WalkInRequest{Account: acctLimit, Amount: 200_000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ConfirmDeposit(ctx, teller3, fits.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got := e.tillCashOf(t, "LS-003"); got != smallTill+200_000 {
		t.Fatalf("till %d", got)
	}
	e.checkLedger(t)
}

// TestDepositLargeCash: at the threshold the teller must type the
// citizen's ID number; it is kept sealed and appears in the report.
func TestDepositLargeCash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.LargeCashThreshold = 1_000_000 })
	ctx := context.Background()
	small := e.depositCode(t, "MB", acctRich, 600_000)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: small.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	if need, err := e.svc.IDRequired(ctx, w); err != nil || need {
		t.Fatalf("ID required for 600000: %v %v", need, err)
	}
	if _, err := e.svc.ConfirmDeposit(ctx, teller1, w.ID, ""); err != nil {
		t.Fatal(err)
	}
	// 600,000 + 400,000 reaches the day's threshold.
	big := e.depositCode(t, "MB", acctRich, 400_000)
	w, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: big.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	if need, err := e.svc.IDRequired(ctx, w); err != nil || !need {
		t.Fatalf("no ID required at the threshold: %v %v", need, err)
	}
	for _, bad := range []string{"", "12345", "ABCDEFGHIJKL"} {
		_, err = e.svc.ConfirmDeposit(ctx, teller1, w.ID, bad)
		wantCode(t, err, softatm.EIDNumberNeeded)
	}
	if s := e.state(t, w.ID); s != atmswitch.StateDepCounter {
		t.Fatalf("a refused confirm moved the deposit to %s", s)
	}
	if _, err := e.svc.ConfirmDeposit(ctx, teller1, w.ID, "001089012345"); err != nil {
		t.Fatal(err)
	}
	var sealed string
	if err := e.pool.QueryRow(ctx, `SELECT id_number_sealed FROM withdrawals WHERE id = $1`, w.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if sealed == "" || sealed == "001089012345" {
		t.Fatalf("the ID number is kept as %q", sealed)
	}
	day, err := e.ledger.BusinessDate(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.svc.LargeCash(ctx, day, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || rep[0].Deposit.ID != w.ID || rep[0].IDNumber != "001089012345" {
		t.Fatalf("report %+v", rep)
	}
	e.checkLedger(t)
}

// TestDepositSweepAndRelease: a released deposit can be scanned again; a
// lapsed claim returns; an unused code expires; the app cancels a code no
// one holds.
func TestDepositSweepAndRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.ClockSkew = 0 })
	ctx := context.Background()
	is := e.depositCode(t, "MB", acctRich, 200_000)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeClaimed)
	if err := e.svc.ReleaseDeposit(ctx, teller2, w.ID); softatm.ErrorCode(err) != softatm.ECodeClaimed {
		t.Fatalf("another teller released: %v", err)
	}
	if err := e.svc.ReleaseDeposit(ctx, teller1, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	// A lapsed claim returns to issued.
	if _, err := e.pool.Exec(ctx, `UPDATE withdrawals SET claim_until = now() - interval '1 minute' WHERE id = $1`, w.ID); err != nil {
		t.Fatal(err)
	}
	// An unused code expires.
	other := e.depositCode(t, "MB", acctRich, 100_000)
	if _, err := e.pool.Exec(ctx, `UPDATE withdrawals SET expires_at = now() - interval '1 minute' WHERE id = $1`, other.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.state(t, w.ID); s != atmswitch.StateDepIssued {
		t.Fatalf("lapsed claim: %s", s)
	}
	if s := e.state(t, other.Withdrawal.ID); s != atmswitch.StateDepExpired {
		t.Fatalf("expired code: %s", s)
	}
	got, err := e.svc.Cancel(ctx, "MB", w.ID)
	if err != nil || got.State != atmswitch.StateDepCancelled {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	_, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeCancelled)
	e.checkLedger(t)
}

// TestDepositCallbacks: a deposit's bank client is called back for each of
// its state changes, typed "deposit.<state>", never "withdrawal.…".
func TestDepositCallbacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	rcv := newReceiver(t, callbackSecret, 0, false)
	addClient(t, e.pool, "mb-app", "MB")
	if err := atmswitch.SetCallback(ctx, e.pool, e.cfg.Secret, "mb-app", rcv.URL+"/softatm", callbackSecret); err != nil {
		t.Fatal(err)
	}
	is, err := e.svc.CreateDeposit(ctx, "MB", atmswitch.DepositRequest{Account: acctRich, Amount: 300_000,
		HolderName: "Nguyen Van An", PhoneLast4: phoneRich, Client: "mb-app"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ConfirmDeposit(ctx, teller1, w.ID, ""); err != nil {
		t.Fatal(err)
	}
	e.drainCallbacks(t, e.callbackWorker(t, 10, 2*time.Second))
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var types []string
	for _, ev := range rcv.accepted {
		types = append(types, ev.Type)
	}
	if want := []string{"deposit.at_counter", "deposit.crediting", "deposit.credited"}; fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("callbacks %v, want %v", types, want)
	}
}

// TestDepositConfirmedOnce: many confirms of one deposit at once (a double
// tap with fresh keys, a retry while the first waits for the bank): one
// 0200 leaves, one receipt, one transfer; the others are told the deposit
// is with the bank or already credited.
func TestDepositConfirmedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.depositCode(t, "MB", acctRich, 400_000)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultDelay, DelayMs: 200})
	const tries = 8
	errs := make(chan error, tries)
	for range tries {
		go func() {
			_, err := e.svc.ConfirmDeposit(ctx, teller1, w.ID, "")
			errs <- err
		}()
	}
	ok := 0
	for range tries {
		err := <-errs
		switch c := softatm.ErrorCode(err); {
		case err == nil:
			ok++
		case c != softatm.EConflict && c != softatm.ECodeUsed:
			t.Errorf("a concurrent confirm: %v", err)
		}
	}
	if ok != 1 || e.sim.Received(iso.MTIFinancialRequest) != 1 || e.transfersOf(t, w.ID) != 1 {
		t.Fatalf("%d receipts, %d 0200s, %d transfers", ok, e.sim.Received(iso.MTIFinancialRequest), e.transfersOf(t, w.ID))
	}
	e.checkLedger(t)
}

// TestDepositRaceAtTwoCounters: two counters confirm, at the same moment,
// deposits that each pass a limit alone but not together; the bank is
// slow, so both credits would be in flight at once. Exactly one is sent
// and credited, the other refused before anything is sent:
//   - till cap: both at one post office, under its till's cash cap alone;
//     the till stays within its cap;
//   - large cash: one account's, each under the large-cash threshold
//     alone and over it together, with no ID number: the other is asked
//     for the ID number.
func TestDepositRaceAtTwoCounters(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		cfg     func(*atmswitch.Config)
		tellers []atmswitch.Teller
		// limit sets the limit up and returns the check after the race.
		limit    func(t *testing.T, e *env) func()
		refusal  string
		refusals string // what the refused confirm was, in words
	}{
		{"till cap", func(*atmswitch.Config) {}, []atmswitch.Teller{teller1, teller2}, func(t *testing.T, e *env) func() {
			till := e.tillCashOf(t, "LS-001")
			if _, err := e.pool.Exec(context.Background(), `UPDATE post_offices SET cash_cap = $1 WHERE code = 'LS-001'`, till+500_000); err != nil {
				t.Fatal(err)
			}
			return func() {
				if got := e.tillCashOf(t, "LS-001"); got > till+500_000 {
					t.Fatalf("till %d over its cap %d", got, till+500_000)
				}
			}
		}, softatm.ETillFull, "refused for the cap"},
		{"large cash", func(c *atmswitch.Config) { c.LargeCashThreshold = 500_000 }, []atmswitch.Teller{teller1, teller3},
			func(*testing.T, *env) func() { return func() {} }, softatm.EIDNumberNeeded, "asked for the ID number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, c.cfg)
			after := c.limit(t, e)
			e.sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultDelay, DelayMs: 200})
			ids := []uuid.UUID{e.counted(t, e.svc, c.tellers[0], 300_000), e.counted(t, e.svc, c.tellers[1], 300_000)}
			ok, refused := 0, 0
			for _, err := range e.confirmAtOnce(c.tellers, ids) {
				switch {
				case err == nil:
					ok++
				case softatm.ErrorCode(err) == c.refusal:
					refused++
				default:
					t.Errorf("a confirm: %v", err)
				}
			}
			if ok != 1 || refused != 1 || e.sim.Received(iso.MTIFinancialRequest) != 1 {
				t.Fatalf("%d credited, %d %s, %d 0200s sent; want 1, 1, 1", ok, refused, c.refusals, e.sim.Received(iso.MTIFinancialRequest))
			}
			after()
			e.checkLedger(t)
		})
	}
}

// TestDepositTillRoomGuard: the move to crediting itself refuses a deposit
// the till has no room for, counting the deposits being credited there,
// whatever was checked before it: the guard the committer runs one move at
// a time, so that two counters confirming at once cannot both fill the
// same room (TestDepositRaceAtTwoCounters runs that race end to end).
func TestDepositTillRoomGuard(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	first, second, third := e.counted(t, e.svc, teller1, 300_000), e.counted(t, e.svc, teller2, 300_000), e.counted(t, e.svc, teller2, 600_000)
	// The cap, set once all three are at the counter (a claim checks it too).
	till := e.tillCashOf(t, "LS-001")
	if _, err := e.pool.Exec(ctx, `UPDATE post_offices SET cash_cap = $1 WHERE code = 'LS-001'`, till+500_000); err != nil {
		t.Fatal(err)
	}
	// Over the cap on its own: refused by the move.
	if err := atmswitch.SendDeposit(e.svc, teller2, third, 600_000); !errors.Is(err, ledger.ErrUnchanged) {
		t.Fatalf("a deposit over the cap moved: %v", err)
	}
	// Fits alone; the second fits alone too, but not beside the first in flight.
	if err := atmswitch.SendDeposit(e.svc, teller1, first, 300_000); err != nil {
		t.Fatal(err)
	}
	if err := atmswitch.SendDeposit(e.svc, teller2, second, 300_000); !errors.Is(err, ledger.ErrUnchanged) {
		t.Fatalf("a deposit with no room beside one in flight moved: %v", err)
	}
	for id, want := range map[uuid.UUID]atmswitch.State{first: atmswitch.StateDepCrediting, second: atmswitch.StateDepCounter, third: atmswitch.StateDepCounter} {
		if s := e.state(t, id); s != want {
			t.Errorf("deposit %s is %s, want %s", id, s, want)
		}
	}
}

// The large-cash guard alone: a deposit that takes the account's day to
// the threshold beside one in flight does not move; a smaller one does.
func TestDepositLargeCashGuard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.LargeCashThreshold = 500_000 })
	first, second, third := e.counted(t, e.svc, teller1, 300_000), e.counted(t, e.svc, teller3, 300_000), e.counted(t, e.svc, teller3, 100_000)
	if err := atmswitch.SendDepositUnderLargeCash(e.svc, teller1, first, "MB", acctRich, 300_000); err != nil {
		t.Fatal(err)
	}
	if err := atmswitch.SendDepositUnderLargeCash(e.svc, teller3, second, "MB", acctRich, 300_000); !errors.Is(err, ledger.ErrUnchanged) {
		t.Fatalf("a deposit taking the account to the threshold beside one in flight moved: %v", err)
	}
	if err := atmswitch.SendDepositUnderLargeCash(e.svc, teller3, third, "MB", acctRich, 100_000); err != nil {
		t.Fatalf("a deposit staying under the threshold: %v", err)
	}
	for id, want := range map[uuid.UUID]atmswitch.State{first: atmswitch.StateDepCrediting, second: atmswitch.StateDepCounter, third: atmswitch.StateDepCrediting} {
		if s := e.state(t, id); s != want {
			t.Errorf("deposit %s is %s, want %s", id, s, want)
		}
	}
}

// A deposit whose credit commit answered with an error but landed is found
// credited when its confirm goes to fail it: the teller gets the receipt,
// not "hand the cash back" (which would pay the citizen twice), and
// nothing is reversed.
func TestHandBackFindsTheDepositCredited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.counted(t, e.svc, teller1, 300_000)
	if _, err := e.svc.ConfirmDeposit(ctx, teller1, id, ""); err != nil {
		t.Fatal(err)
	}
	rc, err := atmswitch.HandBack(e.svc, teller1, id)
	if err != nil || rc.Withdrawal.ID != id || rc.Withdrawal.Amount != 300_000 {
		t.Fatalf("failing a credited deposit: %+v, %v; want its receipt", rc, err)
	}
	if s := e.state(t, id); s != atmswitch.StateDepCredited {
		t.Fatalf("deposit %s, want still credited", s)
	}
	e.drain(t)
	if n := e.sim.Received(iso.MTIReversal); n != 0 {
		t.Fatalf("%d reversals sent for a credited deposit", n)
	}
	e.checkLedger(t)
}
