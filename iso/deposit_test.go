package iso_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
)

func creditReq(c *iso.Client, account string, amount int64) iso.CreditRequest {
	return iso.CreditRequest(authReq(c, account, amount))
}

func balanceOf(t *testing.T, sim *banksim.Sim, account string) int64 {
	t.Helper()
	a, ok := sim.Account(account)
	if !ok {
		t.Fatalf("no account %s", account)
	}
	return a.Balance
}

// TestCreditOnTheLink: a 0200 with processing code 210000 credits the
// account on approval and is answered 0210; its 0420 (processing code
// 210000, field 90 naming the 0200) debits it back; a reversal that
// overtakes its 0200 makes the 0200 credit nothing.
func TestCreditOnTheLink(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr)
	ctx := context.Background()
	before := balanceOf(t, sim, acctPoor)

	r := creditReq(c, acctPoor, 500_000)
	resp, err := c.Credit(ctx, r)
	if err != nil || resp.ResponseCode != iso.RCApproved || resp.ApprovalCode == "" || resp.Amount != 500_000 {
		t.Fatalf("credit: %+v, %v", resp, err)
	}
	if got := balanceOf(t, sim, acctPoor); got != before+500_000 {
		t.Fatalf("balance %d after a credit of 500000 to %d", got, before)
	}
	if sim.Received(iso.MTIFinancialRequest) != 1 {
		t.Fatalf("the bank received %d 0200s", sim.Received(iso.MTIFinancialRequest))
	}

	rev := adviceFor(c, iso.AuthRequest(r), resp.ApprovalCode)
	rev.ProcessingCode = iso.ProcessingDeposit
	rev.Original.MTI = iso.MTIFinancialRequest
	if a, err := c.Reverse(ctx, rev); err != nil || a.ResponseCode != iso.RCApproved {
		t.Fatalf("reversal: %+v, %v", a, err)
	}
	if got := balanceOf(t, sim, acctPoor); got != before {
		t.Fatalf("balance %d after the reversal, want %d", got, before)
	}
	// A repeat changes nothing.
	rev.Repeat, rev.STAN = true, c.NextSTAN()
	if a, err := c.Reverse(ctx, rev); err != nil || a.ResponseCode != iso.RCApproved {
		t.Fatalf("repeated reversal: %+v, %v", a, err)
	}
	if got := balanceOf(t, sim, acctPoor); got != before {
		t.Fatalf("balance %d after a repeated reversal, want %d", got, before)
	}

	// The reversal first, then its 0200: nothing is credited.
	r2 := creditReq(c, acctPoor, 200_000)
	rev2 := adviceFor(c, iso.AuthRequest(r2), "")
	rev2.ProcessingCode = iso.ProcessingDeposit
	rev2.Original.MTI = iso.MTIFinancialRequest
	if a, err := c.Reverse(ctx, rev2); err != nil || a.ResponseCode != iso.RCApproved {
		t.Fatalf("early reversal: %+v, %v", a, err)
	}
	if resp, err := c.Credit(ctx, r2); err != nil || resp.ResponseCode == iso.RCApproved {
		t.Fatalf("a 0200 after its reversal: %+v, %v", resp, err)
	}
	if got := balanceOf(t, sim, acctPoor); got != before {
		t.Fatalf("balance %d after a reversed-before-arrival 0200, want %d", got, before)
	}
}

func TestCreditDeclines(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t)
	c := upClient(t, addr)
	for _, tc := range []struct {
		account string
		want    string
	}{
		{"9704999999999999", iso.RCInvalidAccount},
		{acctBlocked, iso.RCDoNotHonour},
	} {
		resp, err := c.Credit(context.Background(), creditReq(c, tc.account, 100_000))
		if err != nil || resp.ResponseCode != tc.want {
			t.Errorf("%s: %+v, %v; want %s", iso.Mask(tc.account), resp, err, tc.want)
		}
	}
	if _, err := c.Credit(context.Background(), creditReq(c, acctRich, 0)); err == nil {
		t.Error("a 0200 of nothing was sent")
	}
}

// TestCreditReplyLies: a 0210 that states another amount (or account, RRN,
// currency, processing code) than the 0200 is no approval: Credit returns
// a *MismatchError, never an approval to record.
func TestCreditReplyLies(t *testing.T) {
	t.Parallel()
	for _, lie := range []string{banksim.FaultReplyAmount, banksim.FaultReplyAccount, banksim.FaultReplyRRN,
		banksim.FaultReplyCurrency, banksim.FaultReplyProc} {
		t.Run(lie, func(t *testing.T) {
			t.Parallel()
			sim, addr := startSim(t)
			sim.SetMTIFault(iso.MTIFinancialRequest, banksim.Fault{Kind: lie})
			c := upClient(t, addr)
			_, err := c.Credit(context.Background(), creditReq(c, acctRich, 300_000))
			var me *iso.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("a lying 0210 gave %v, want a mismatch", err)
			}
		})
	}
}

// TestCreditTimeout: no 0210 in time is an error, never an approval.
func TestCreditTimeout(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	sim.SetMTIFault(iso.MTIFinancialRequest, banksim.Fault{Kind: banksim.FaultLate, DelayMs: 500})
	c := upClient(t, addr, iso.WithRequestTimeout(100*time.Millisecond))
	if resp, err := c.Credit(context.Background(), creditReq(c, acctRich, 300_000)); !errors.Is(err, iso.ErrTimeout) {
		t.Fatalf("late 0210: %+v, %v; want a time-out", resp, err)
	}
}

// TestVerifyAccount: a 0100 with processing code 330000 is answered with
// the holder's name in field 48, or 14 for an unknown account, and moves
// no money.
func TestVerifyAccount(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr)
	before := balanceOf(t, sim, acctRich)
	req := iso.VerifyRequest{STAN: c.NextSTAN(), RRN: "V00000000001", TransmittedAt: time.Now(), Account: acctRich,
		Currency: iso.CurrencyVND, TerminalID: "KIOSK001", CardAcceptor: "LS-001", AcceptorName: "Bưu điện"}
	resp, err := c.Verify(context.Background(), req)
	if err != nil || resp.ResponseCode != iso.RCApproved || resp.HolderName != "NGUYEN VAN A" {
		t.Fatalf("verify: %+v, %v", resp, err)
	}
	req.STAN, req.Account = c.NextSTAN(), "9704999999999999"
	resp, err = c.Verify(context.Background(), req)
	if err != nil || resp.ResponseCode != iso.RCInvalidAccount || resp.HolderName != "" {
		t.Fatalf("verify unknown: %+v, %v", resp, err)
	}
	if got := balanceOf(t, sim, acctRich); got != before || len(sim.Holds()) != 0 {
		t.Fatalf("a verification moved money: balance %d, holds %d", got, len(sim.Holds()))
	}
}
