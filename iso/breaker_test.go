package iso_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
)

// TestCircuitBreakerOpensOnSilenceAndProbes: a bank that keeps its
// connection but stops answering (every 0100 dropped) costs the first
// requests their whole deadline; then the circuit opens and requests are
// refused at once, unsent (the bank receives no more 0100s); after the
// cool-down one probe goes out, and its reply closes the circuit.
func TestCircuitBreakerOpensOnSilenceAndProbes(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	const cooldown = 500 * time.Millisecond
	c := upClient(t, addr, iso.WithRequestTimeout(150*time.Millisecond), iso.WithBreaker(2, cooldown))
	sim.SetFault("", banksim.Fault{Kind: banksim.FaultDrop})

	for i := range 2 {
		if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000)); !errors.Is(err, iso.ErrTimeout) {
			t.Fatalf("request %d to a silent bank: %v, want ErrTimeout", i, err)
		}
	}
	if c.Ready() || !c.CircuitOpen() {
		t.Fatalf("after 2 unanswered requests: ready %v, circuit open %v; want not ready, open", c.Ready(), c.CircuitOpen())
	}
	sent := sim.Received(iso.MTIAuthRequest)
	start := time.Now()
	_, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000))
	took := time.Since(start)
	if !errors.Is(err, iso.ErrCircuitOpen) || !errors.Is(err, iso.ErrLinkDown) {
		t.Fatalf("request with the circuit open: %v, want ErrCircuitOpen (an ErrLinkDown)", err)
	}
	if took > 100*time.Millisecond {
		t.Errorf("refused after %v, want at once", took)
	}
	t.Logf("open circuit refused a request in %v", took)
	time.Sleep(50 * time.Millisecond)
	if got := sim.Received(iso.MTIAuthRequest); got != sent {
		t.Fatalf("the bank received %d 0100s after the circuit opened, want none", got-sent)
	}

	// The bank answers again; once the cool-down is over one probe goes
	// out and closes the circuit.
	sim.ClearFaults()
	waitFor(t, "the cool-down", func() bool { return !c.CircuitOpen() })
	resp, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000))
	if err != nil || resp.ResponseCode != iso.RCApproved {
		t.Fatalf("probe: %+v, %v", resp, err)
	}
	if !c.Ready() {
		t.Fatal("an answered probe left the circuit open")
	}
}

// TestCircuitBreakerProbeTimesOutReopens: a probe that gets no reply opens
// the circuit again for a whole cool-down.
func TestCircuitBreakerProbeTimesOutReopens(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr, iso.WithRequestTimeout(100*time.Millisecond), iso.WithBreaker(1, 300*time.Millisecond))
	sim.SetFault("", banksim.Fault{Kind: banksim.FaultDrop})
	if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000)); !errors.Is(err, iso.ErrTimeout) {
		t.Fatalf("first: %v", err)
	}
	waitFor(t, "the cool-down", func() bool { return !c.CircuitOpen() })
	if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000)); !errors.Is(err, iso.ErrTimeout) {
		t.Fatalf("probe: %v, want ErrTimeout", err)
	}
	if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000)); !errors.Is(err, iso.ErrCircuitOpen) {
		t.Fatalf("after a failed probe: %v, want ErrCircuitOpen", err)
	}
}

// TestStandbyAddress: with the primary address refusing connections, the
// client signs on at the standby.
func TestStandbyAddress(t *testing.T) {
	t.Parallel()
	sim, standby := startSim(t)
	dead := deadAddr(t)
	c := upClient(t, dead, iso.WithStandby(standby))
	if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000)); err != nil {
		t.Fatal(err)
	}
	if sim.Received(iso.MTIAuthRequest) != 1 {
		t.Fatal("the standby did not get the 0100")
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestCircuitBreakerIgnoresStoreAndForward: a bank that answers its 0100s
// but leaves 0220s unanswered keeps taking withdrawals: advices (the
// outbox's, retried anyway) neither open the circuit nor are refused by it.
func TestCircuitBreakerIgnoresStoreAndForward(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr, iso.WithRequestTimeout(150*time.Millisecond), iso.WithBreaker(2, time.Minute))
	sim.SetMTIFault(iso.MTIAdvice, banksim.Fault{Kind: banksim.FaultDrop})
	var advices []iso.AdviceRequest
	for i := range 3 {
		r := authReq(c, acctRich, 100_000)
		resp, err := c.Authorize(context.Background(), r)
		if err != nil || resp.ResponseCode != iso.RCApproved {
			t.Fatalf("0100 %d: %+v %v", i, resp, err)
		}
		advices = append(advices, adviceFor(c, r, resp.ApprovalCode))
	}
	for i, adv := range advices { // three in a row without a reply
		if _, err := c.Advise(context.Background(), adv); !errors.Is(err, iso.ErrTimeout) {
			t.Fatalf("0220 %d to a bank that drops them: %v, want ErrTimeout", i, err)
		}
	}
	if !c.Ready() || c.CircuitOpen() {
		t.Fatalf("after 3 unanswered 0220s: ready %v, circuit open %v; want ready, closed", c.Ready(), c.CircuitOpen())
	}
	if resp, err := c.Authorize(context.Background(), authReq(c, acctRich, 100_000)); err != nil || resp.ResponseCode != iso.RCApproved {
		t.Fatalf("a 0100 after unanswered 0220s: %+v %v", resp, err)
	}
}
