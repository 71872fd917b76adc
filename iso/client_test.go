package iso_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
)

const (
	acctRich    = "9704000000000011"
	acctPoor    = "9704000000000022"
	acctBlocked = "9704000000000033"
	acctLimited = "9704000000000044"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testAccounts() []banksim.Account {
	return []banksim.Account{
		{Number: acctRich, Bank: "MB", Holder: "NGUYEN VAN A", Balance: 100_000_000, DailyLimit: 50_000_000},
		{Number: acctPoor, Bank: "MB", Holder: "TRAN THI B", Balance: 100_000},
		{Number: acctBlocked, Bank: "MB", Holder: "LE VAN C", Balance: 10_000_000, Blocked: true},
		{Number: acctLimited, Bank: "MB", Holder: "PHAM D", Balance: 10_000_000, DailyLimit: 1_000_000},
	}
}

func startSim(t *testing.T) (*banksim.Sim, string) {
	t.Helper()
	sim := banksim.New(testAccounts(), banksim.WithLogger(quiet))
	addr, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, addr.String()
}

func newClient(t *testing.T, addr string, opts ...iso.Option) *iso.Client {
	t.Helper()
	base := []iso.Option{
		iso.WithLogger(quiet),
		iso.WithRequestTimeout(2 * time.Second),
		iso.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond),
	}
	c := iso.NewClient(addr, append(base, opts...)...)
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func upClient(t *testing.T, addr string, opts ...iso.Option) *iso.Client {
	t.Helper()
	c := newClient(t, addr, opts...)
	waitFor(t, "sign-on", c.Up)
	return c
}

var rrnSeq atomic.Int64

func authReq(c *iso.Client, account string, amount int64) iso.AuthRequest {
	return iso.AuthRequest{
		STAN: c.NextSTAN(), RRN: fmt.Sprintf("%012d", rrnSeq.Add(1)), TransmittedAt: time.Now(),
		Account: account, Amount: amount, Currency: iso.CurrencyVND,
		TerminalID: "KIOSK001", CardAcceptor: "LS-001", AcceptorName: "Bưu điện Lạng Sơn",
	}
}

func adviceFor(c *iso.Client, a iso.AuthRequest, approval string) iso.AdviceRequest {
	return iso.AdviceRequest{
		STAN: c.NextSTAN(), RRN: a.RRN, TransmittedAt: time.Now(),
		Account: a.Account, Amount: a.Amount, Currency: a.Currency, ApprovalCode: approval,
		TerminalID: a.TerminalID, CardAcceptor: a.CardAcceptor, AcceptorName: a.AcceptorName,
		Original: iso.Original{MTI: iso.MTIAuthRequest, STAN: a.STAN, TransmittedAt: a.TransmittedAt, AcquirerID: iso.DefaultAcquirerID},
	}
}

func TestAuthorizeResponseCodes(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr)
	ctx := context.Background()

	for _, tc := range []struct {
		name    string
		account string
		amount  int64
		fault   string
		want    string
	}{
		{"approved", acctRich, 1_000_000, "", iso.RCApproved},
		{"blocked", acctBlocked, 1_000, "", iso.RCDoNotHonour},
		{"zero amount", acctRich, 0, "", iso.RCInvalidAmount},
		{"unknown account", "9704999999999999", 1_000, "", iso.RCInvalidAccount},
		{"insufficient funds", acctPoor, 200_000, "", iso.RCInsufficientFunds},
		{"over daily limit", acctLimited, 1_500_000, "", iso.RCExceedsLimit},
		{"issuer unavailable", acctPoor, 1_000, banksim.FaultUnavailable, iso.RCIssuerUnavailable},
		{"malfunction", acctPoor, 1_000, banksim.FaultMalfunction, iso.RCSystemError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim.SetFault(tc.account, banksim.Fault{Kind: tc.fault})
			defer sim.SetFault(tc.account, banksim.Fault{})
			r := authReq(c, tc.account, tc.amount)
			resp, err := c.Authorize(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ResponseCode != tc.want || resp.STAN != r.STAN || resp.RRN != r.RRN {
				t.Fatalf("got %+v, want rc %s for STAN %s RRN %s", resp, tc.want, r.STAN, r.RRN)
			}
			if (resp.ApprovalCode != "") != (tc.want == iso.RCApproved) {
				t.Fatalf("approval code %q with rc %s", resp.ApprovalCode, resp.ResponseCode)
			}
		})
	}

	t.Run("duplicate transmission", func(t *testing.T) {
		r := authReq(c, acctRich, 10_000)
		first, err := c.Authorize(ctx, r)
		if err != nil || first.ResponseCode != iso.RCApproved {
			t.Fatalf("first: %+v %v", first, err)
		}
		again, err := c.Authorize(ctx, r)
		if err != nil || again.ResponseCode != iso.RCDuplicate {
			t.Fatalf("repeat: %+v %v", again, err)
		}
	})

	t.Run("limit counts holds", func(t *testing.T) {
		ok, err := c.Authorize(ctx, authReq(c, acctLimited, 600_000))
		if err != nil || ok.ResponseCode != iso.RCApproved {
			t.Fatalf("first: %+v %v", ok, err)
		}
		over, err := c.Authorize(ctx, authReq(c, acctLimited, 600_000))
		if err != nil || over.ResponseCode != iso.RCExceedsLimit {
			t.Fatalf("second: %+v %v", over, err)
		}
	})
}

func TestAdviseAndReverse(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr)
	ctx := context.Background()
	held := func() int64 { a, _ := sim.Account(acctRich); return a.Held }
	balance := func() int64 { a, _ := sim.Account(acctRich); return a.Balance }
	authorize := func(amount int64) (iso.AuthRequest, string) {
		t.Helper()
		r := authReq(c, acctRich, amount)
		resp, err := c.Authorize(ctx, r)
		if err != nil || resp.ResponseCode != iso.RCApproved {
			t.Fatalf("authorize: %+v %v", resp, err)
		}
		return r, resp.ApprovalCode
	}
	expect := func(what string, resp iso.AdviceResponse, err error, rc string) {
		t.Helper()
		if err != nil || resp.ResponseCode != rc {
			t.Fatalf("%s: %+v %v, want %s", what, resp, err, rc)
		}
	}

	// Capture, then the repeat advice changes nothing.
	r, code := authorize(2_000_000)
	if held() != 2_000_000 {
		t.Fatalf("held %d", held())
	}
	adv := adviceFor(c, r, code)
	resp, err := c.Advise(ctx, adv)
	expect("0220", resp, err, iso.RCApproved)
	adv.Repeat, adv.STAN = true, c.NextSTAN()
	resp, err = c.Advise(ctx, adv)
	expect("0221", resp, err, iso.RCApproved)
	if held() != 0 || balance() != 98_000_000 {
		t.Fatalf("after capture: held %d balance %d", held(), balance())
	}
	if a, _ := sim.Account(acctRich); a.WithdrawnToday != 2_000_000 {
		t.Fatalf("withdrawn today %d", a.WithdrawnToday)
	}
	// A reversal after capture is refused.
	resp, err = c.Reverse(ctx, adviceFor(c, r, code))
	expect("0420 after capture", resp, err, iso.RCInvalidTransaction)

	// Release, repeat, then a capture after release is refused.
	r2, code2 := authorize(3_000_000)
	rev := adviceFor(c, r2, code2)
	resp, err = c.Reverse(ctx, rev)
	expect("0420", resp, err, iso.RCApproved)
	rev.Repeat, rev.STAN = true, c.NextSTAN()
	resp, err = c.Reverse(ctx, rev)
	expect("0421", resp, err, iso.RCApproved)
	if held() != 0 || balance() != 98_000_000 {
		t.Fatalf("after release: held %d balance %d", held(), balance())
	}
	resp, err = c.Advise(ctx, adviceFor(c, r2, code2))
	expect("0220 after release", resp, err, iso.RCInvalidTransaction)

	// A reversal without approval code finds the hold by RRN / original STAN.
	r3, _ := authorize(500_000)
	resp, err = c.Reverse(ctx, adviceFor(c, r3, ""))
	expect("0420 by RRN", resp, err, iso.RCApproved)
	if held() != 0 {
		t.Fatalf("held %d after reversal by RRN", held())
	}

	// Reversal of a 0100 the bank never saw: nothing to release, 00.
	never := authReq(c, acctRich, 1_000)
	resp, err = c.Reverse(ctx, adviceFor(c, never, ""))
	expect("0420 of unseen 0100", resp, err, iso.RCApproved)

	// Advice for an unknown hold.
	resp, err = c.Advise(ctx, adviceFor(c, never, "ZZZZZZ"))
	expect("0220 unknown hold", resp, err, iso.RCInvalidTransaction)

	var states []string
	for _, h := range sim.Holds() {
		states = append(states, h.State)
	}
	if fmt.Sprint(states) != "[captured released released]" {
		t.Fatalf("holds %v", states)
	}
	for _, mti := range []string{"0100", "0220", "0221", "0420", "0421", "0800"} {
		if sim.Received(mti) == 0 {
			t.Errorf("sim received no %s", mti)
		}
	}
}

type lateReplies struct {
	mu   sync.Mutex
	seen []string
}

func (l *lateReplies) hook(mti, stan, rrn string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, mti+"/"+stan+"/"+rrn)
}

func (l *lateReplies) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.seen {
		if x == s {
			return true
		}
	}
	return false
}

func TestFaults(t *testing.T) {
	t.Parallel()

	t.Run("drop: timeout, hold stays until reversed", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t)
		c := upClient(t, addr, iso.WithRequestTimeout(200*time.Millisecond))
		sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultDrop})
		r := authReq(c, acctRich, 1_000_000)
		_, err := c.Authorize(context.Background(), r)
		if !errors.Is(err, iso.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		if a, _ := sim.Account(acctRich); a.Held != 1_000_000 {
			t.Fatalf("held %d: the bank processed the dropped 0100", a.Held)
		}
		sim.SetFault(acctRich, banksim.Fault{})
		resp, err := c.Reverse(context.Background(), adviceFor(c, r, ""))
		if err != nil || resp.ResponseCode != iso.RCApproved {
			t.Fatalf("reverse: %+v %v", resp, err)
		}
		if a, _ := sim.Account(acctRich); a.Held != 0 {
			t.Fatalf("held %d after reversal", a.Held)
		}
	})

	t.Run("late: timeout, then the late hook", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t)
		var late lateReplies
		c := upClient(t, addr, iso.WithRequestTimeout(100*time.Millisecond), iso.WithLateReply(late.hook))
		sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultLate, DelayMs: 300})
		r := authReq(c, acctRich, 1_000)
		if _, err := c.Authorize(context.Background(), r); !errors.Is(err, iso.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		waitFor(t, "late reply", func() bool { return late.has("0110/" + r.STAN + "/" + r.RRN) })
	})

	t.Run("delay within the deadline", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t)
		c := upClient(t, addr)
		sim.SetMTIFault("0100", banksim.Fault{Kind: banksim.FaultDelay, DelayMs: 50})
		resp, err := c.Authorize(context.Background(), authReq(c, acctRich, 1_000))
		if err != nil || resp.ResponseCode != iso.RCApproved {
			t.Fatalf("got %+v %v", resp, err)
		}
	})

	t.Run("ctx deadline shorter than the request timeout", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t)
		c := upClient(t, addr)
		sim.SetFault("", banksim.Fault{Kind: banksim.FaultDrop})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Advise(ctx, adviceFor(c, authReq(c, acctRich, 1), "AAAAAA")); !errors.Is(err, iso.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	})

	t.Run("duplicate reply: first used, second to the late hook", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t)
		var late lateReplies
		c := upClient(t, addr, iso.WithLateReply(late.hook))
		sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultDuplicate})
		r := authReq(c, acctRich, 1_000)
		resp, err := c.Authorize(context.Background(), r)
		if err != nil || resp.ResponseCode != iso.RCApproved {
			t.Fatalf("got %+v %v", resp, err)
		}
		waitFor(t, "duplicate reported", func() bool { return late.has("0110/" + r.STAN + "/" + r.RRN) })
		if n := len(sim.Holds()); n != 1 {
			t.Fatalf("%d holds", n)
		}
	})

	t.Run("disconnect: outcome unknown, link down, reconnect", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t)
		c := upClient(t, addr, iso.WithReconnectBackoff(200*time.Millisecond, 200*time.Millisecond))
		sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultDisconnect})
		_, err := c.Authorize(context.Background(), authReq(c, acctRich, 1_000))
		if !errors.Is(err, iso.ErrTimeout) || !errors.Is(err, iso.ErrLinkLost) {
			t.Fatalf("got %v, want ErrLinkLost (an ErrTimeout)", err)
		}
		waitFor(t, "link down", func() bool { return !c.Up() })
		if _, err := c.Authorize(context.Background(), authReq(c, acctPoor, 1_000)); !errors.Is(err, iso.ErrLinkDown) {
			t.Fatalf("while down: got %v, want ErrLinkDown", err)
		}
		waitFor(t, "reconnect", c.Up)
		if n := sim.Received("0800"); n < 2 {
			t.Fatalf("%d sign-ons", n)
		}
		resp, err := c.Authorize(context.Background(), authReq(c, acctPoor, 1_000))
		if err != nil || resp.ResponseCode != iso.RCApproved {
			t.Fatalf("after reconnect: %+v %v", resp, err)
		}
	})
}

func TestReconnectAfterBankRestart(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr)
	if sim.Received("0800") != 1 {
		t.Fatalf("sign-ons %d", sim.Received("0800"))
	}
	sim.Close()
	waitFor(t, "link down", func() bool { return !c.Up() })
	if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 1_000)); !errors.Is(err, iso.ErrLinkDown) {
		t.Fatalf("got %v, want ErrLinkDown", err)
	}
	// Restart on the same port: the listener may take a moment to free.
	waitFor(t, "relisten", func() bool { _, err := sim.Listen(addr); return err == nil })
	waitFor(t, "sign-on again", c.Up)
	if sim.Received("0800") < 2 {
		t.Fatalf("sign-ons %d", sim.Received("0800"))
	}
	resp, err := c.Authorize(context.Background(), authReq(c, acctRich, 1_000))
	if err != nil || resp.ResponseCode != iso.RCApproved {
		t.Fatalf("after restart: %+v %v", resp, err)
	}
}

func TestConnectsWhenBankStartsLater(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, addr)
	time.Sleep(50 * time.Millisecond)
	if c.Up() {
		t.Fatal("up with no bank")
	}
	sim := banksim.New(testAccounts(), banksim.WithLogger(quiet))
	waitFor(t, "listen", func() bool { _, err := sim.Listen(addr); return err == nil })
	defer sim.Close()
	waitFor(t, "sign-on", c.Up)
}

func TestConcurrentRequestsMatched(t *testing.T) {
	t.Parallel()
	const n = 200
	var accounts []banksim.Account
	for i := 0; i < 20; i++ {
		accounts = append(accounts, banksim.Account{Number: fmt.Sprintf("97040100000000%02d", i), Balance: 1_000_000_000})
	}
	sim := banksim.New(accounts, banksim.WithLogger(quiet))
	addr, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// Different delays per account reorder the replies on the one connection.
	for i, a := range accounts {
		sim.SetFault(a.Number, banksim.Fault{Kind: banksim.FaultDelay, DelayMs: (i * 7) % 40})
	}
	c := upClient(t, addr.String(), iso.WithRequestTimeout(5*time.Second))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := authReq(c, accounts[i%len(accounts)].Number, int64(1000+i))
			resp, err := c.Authorize(context.Background(), r)
			switch {
			case err != nil:
				errs <- err
			case resp.STAN != r.STAN || resp.RRN != r.RRN || resp.ResponseCode != iso.RCApproved:
				errs <- fmt.Errorf("request %s/%s got %+v", r.STAN, r.RRN, resp)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var total int64
	for _, h := range sim.Holds() {
		total += h.Amount
	}
	if want := int64(n*1000 + n*(n-1)/2); total != want {
		t.Fatalf("held %d, want %d", total, want)
	}
}

func TestEchoAndDeadLinkDetection(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr, iso.WithEchoInterval(30*time.Millisecond), iso.WithRequestTimeout(100*time.Millisecond))
	waitFor(t, "echo tests", func() bool { return sim.Received("0800") >= 4 })
	if !c.Up() {
		t.Fatal("down after echoes")
	}
	// The bank stops answering network messages: the echo fails and the
	// client drops the link; sign-on fails until the bank answers again.
	sim.SetMTIFault("0800", banksim.Fault{Kind: banksim.FaultDrop})
	waitFor(t, "link down", func() bool { return !c.Up() })
	sim.SetMTIFault("0800", banksim.Fault{})
	waitFor(t, "link up", c.Up)
}

func TestCloseSignsOff(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	var observed atomic.Int32
	c := upClient(t, addr, iso.WithObserver(func(mti, rc string, rtt time.Duration, err error) {
		if mti == "0100" && rc == "00" && err == nil && rtt > 0 {
			observed.Add(1)
		}
	}))
	if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 1_000)); err != nil {
		t.Fatal(err)
	}
	if observed.Load() != 1 {
		t.Fatalf("observer saw %d", observed.Load())
	}
	before := sim.Received("0800")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if sim.Received("0800") != before+1 {
		t.Fatalf("no sign-off: 0800s %d then %d", before, sim.Received("0800"))
	}
	if c.Up() {
		t.Fatal("up after Close")
	}
	if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 1_000)); !errors.Is(err, iso.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseWhileWaiting(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr)
	sim.SetFault("", banksim.Fault{Kind: banksim.FaultDrop})
	done := make(chan error, 1)
	go func() {
		_, err := c.Authorize(context.Background(), authReq(c, acctRich, 1_000))
		done <- err
	}()
	waitFor(t, "0100 at the bank", func() bool { return sim.Received("0100") == 1 })
	c.Close()
	if err := <-done; !errors.Is(err, iso.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}
