package iso_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
)

// liar is a bank that answers every request with an honest echo, except
// that replies to the MTI it is told to lie on pass through lie first.
type liar struct {
	mti string
	lie func(reply *iso.Message)
	ln  net.Listener
	wg  sync.WaitGroup
}

func startLiar(t *testing.T, mti string, lie func(reply *iso.Message)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &liar{mti: mti, lie: lie, ln: ln}
	l.wg.Add(1)
	go l.accept(t)
	t.Cleanup(func() { ln.Close(); l.wg.Wait() })
	return ln.Addr().String()
}

func (l *liar) accept(t *testing.T) {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// The client signs off and closes on Cleanup; the listener
			// closing does not end this read, so bound it.
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				m, _, err := iso.ReadMessage(r)
				if err != nil {
					return
				}
				reply := *m
				reply.MTI, reply.ResponseCode, reply.OriginalData = iso.ResponseMTI(m.MTI), iso.RCApproved, ""
				if m.MTI == iso.MTIAuthRequest {
					reply.ApprovalCode = "A1B2C3"
				}
				if m.MTI == l.mti {
					l.lie(&reply)
				}
				b, err := iso.Pack(&reply)
				if err != nil {
					t.Errorf("liar cannot pack its reply: %v", err)
					return
				}
				if err := iso.WriteFrame(c, b); err != nil {
					return
				}
			}
		}()
	}
}

// syncBuffer is a log sink safe for the client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLyingBankRefused: a reply (0110, 0230, 0430) that differs from its
// request in one of fields 2, 3, 4, 37, 49 or 102, by another value or by
// leaving the field out, is no answer: the Client returns a *MismatchError
// naming that field, shows nothing of what the reply said, and logs no
// account in clear. The honest reply to the same request is accepted.
// (Fields 11 and 41 decide which request a reply answers, so a reply with
// another STAN or terminal never reaches one: TestReplyForAnotherSTAN.)
func TestLyingBankRefused(t *testing.T) {
	t.Parallel()
	type lie struct {
		name  string
		field string
		lie   func(m *iso.Message)
	}
	lies := []lie{
		{"another processing code", "3", func(m *iso.Message) { m.ProcessingCode = "310000" }},
		{"no processing code", "3", func(m *iso.Message) { m.ProcessingCode = "" }},
		{"another amount (110,000 answered 10,000)", "4", func(m *iso.Message) { m.Amount = "000000010000" }},
		{"no amount", "4", func(m *iso.Message) { m.Amount = "" }},
		{"another RRN", "37", func(m *iso.Message) { m.RRN = "999999999999" }},
		{"no RRN", "37", func(m *iso.Message) { m.RRN = "" }},
		{"currency 840", "49", func(m *iso.Message) { m.Currency = "840" }},
		{"no currency", "49", func(m *iso.Message) { m.Currency = "" }},
		{"another account", "102", func(m *iso.Message) { m.Account = acctPoor }},
		{"no account", "102", func(m *iso.Message) { m.Account = "" }},
		{"an account in field 2 too", "2", func(m *iso.Message) { m.PAN = acctPoor }},
		{"amount and RRN", "4,37", func(m *iso.Message) { m.Amount, m.RRN = "000000010000", "999999999999" }},
	}
	for _, mti := range []string{iso.MTIAuthRequest, iso.MTIAdvice, iso.MTIReversal} {
		for _, l := range lies {
			t.Run(mti+"/"+l.name, func(t *testing.T) {
				t.Parallel()
				var logs syncBuffer
				c := upClient(t, startLiar(t, mti, l.lie), iso.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
				err := send(c, mti, 110_000)
				var me *iso.MismatchError
				if !errors.Is(err, iso.ErrReplyMismatch) || !errors.As(err, &me) {
					t.Fatalf("got %v, want a MismatchError", err)
				}
				if got := strings.Join(me.Fields, ","); got != l.field || me.MTI != iso.ResponseMTI(mti) {
					t.Fatalf("fields %s MTI %s, want %s %s", got, me.MTI, l.field, iso.ResponseMTI(mti))
				}
				for what, s := range map[string]string{"error": err.Error(), "request": me.Request, "reply": me.Reply, "log": logs.String()} {
					if strings.Contains(s, acctRich) || strings.Contains(s, acctPoor) {
						t.Errorf("%s shows a full account: %s", what, s)
					}
				}
				if !strings.Contains(me.Request, iso.Mask(acctRich)) || !strings.Contains(logs.String(), "does not match") {
					t.Errorf("request %q, log %q", me.Request, logs.String())
				}
			})
		}
		t.Run(mti+"/honest", func(t *testing.T) {
			t.Parallel()
			c := upClient(t, startLiar(t, "", nil))
			if err := send(c, mti, 110_000); err != nil {
				t.Fatalf("honest reply refused: %v", err)
			}
		})
	}
}

// send sends one request of this MTI for amount on acctRich and returns
// the client's error; an answer must be 00 and, for a 0110, carry what was
// asked.
func send(c *iso.Client, mti string, amount int64) error {
	ctx := context.Background()
	r := authReq(c, acctRich, amount)
	switch mti {
	case iso.MTIAuthRequest:
		resp, err := c.Authorize(ctx, r)
		if err != nil {
			return err
		}
		want := iso.AuthResponse{ResponseCode: iso.RCApproved, ApprovalCode: "A1B2C3", STAN: r.STAN, RRN: r.RRN, Amount: amount, Currency: iso.CurrencyVND}
		if resp != want {
			return fmt.Errorf("answer %+v, want %+v", resp, want)
		}
		return nil
	case iso.MTIAdvice, iso.MTIReversal:
		call := c.Advise
		if mti == iso.MTIReversal {
			call = c.Reverse
		}
		resp, err := call(ctx, adviceFor(c, r, "A1B2C3"))
		if err == nil && resp.ResponseCode != iso.RCApproved {
			return fmt.Errorf("answer %+v", resp)
		}
		return err
	}
	panic("no such request " + mti)
}

// TestReplyForAnotherSTAN: a reply naming another STAN or terminal is not
// given to the waiting request (it goes to the late-reply hook), so the
// request ends in ErrTimeout, outcome unknown.
func TestReplyForAnotherSTAN(t *testing.T) {
	t.Parallel()
	for name, lie := range map[string]func(*iso.Message){
		"11": func(m *iso.Message) { m.STAN = "999999" },
		"41": func(m *iso.Message) { m.TerminalID = "KIOSK999" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var late lateReplies
			c := upClient(t, startLiar(t, iso.MTIAuthRequest, lie), iso.WithRequestTimeout(200*time.Millisecond), iso.WithLateReply(late.hook))
			r := authReq(c, acctRich, 110_000)
			if _, err := c.Authorize(context.Background(), r); !errors.Is(err, iso.ErrTimeout) {
				t.Fatalf("got %v, want ErrTimeout", err)
			}
			waitFor(t, "late reply", func() bool {
				late.mu.Lock()
				defer late.mu.Unlock()
				return len(late.seen) == 1
			})
		})
	}
}

// TestLyingNetworkReply: an 0810 whose field 70 (or 11's companions) is not
// the 0800's is no answer, so sign-on fails and the link never comes up; the
// honest 0810 signs on.
func TestLyingNetworkReply(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		lie   func(*iso.Message)
		field string
	}{
		"another network code": {func(m *iso.Message) { m.NetworkCode = iso.NetworkSignOff }, "70"},
		"no network code":      {func(m *iso.Message) { m.NetworkCode = "" }, "70"},
		"an amount":            {func(m *iso.Message) { m.Amount = "000000010000" }, "4"},
		"an account":           {func(m *iso.Message) { m.Account = acctPoor }, "102"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			c := newClient(t, startLiar(t, iso.MTINetworkRequest, tc.lie), iso.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			want := fmt.Sprintf("iso: 0810 does not match its request: %s sent", tc.field)
			waitFor(t, "sign-on refused", func() bool { return strings.Contains(logs.String(), want) })
			if c.Up() {
				t.Fatal("signed on with a lying 0810")
			}
			if strings.Contains(logs.String(), acctPoor) {
				t.Fatalf("log shows a full account: %s", logs.String())
			}
		})
	}
	t.Run("honest", func(t *testing.T) {
		t.Parallel()
		upClient(t, startLiar(t, "", nil))
	})
}

// TestBankAnswersAnotherAmount is the case against the simulator:
// a 0100 for 110,000 answered 00 for 55,000 is no approval; the bank holds
// what it said, and the reversal the switch sends for the 0100 releases it.
func TestBankAnswersAnotherAmount(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t)
	c := upClient(t, addr)
	sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultReplyAmount})
	r := authReq(c, acctRich, 110_000)
	resp, err := c.Authorize(context.Background(), r)
	var me *iso.MismatchError
	if !errors.As(err, &me) || !reflect.DeepEqual(me.Fields, []string{"4"}) {
		t.Fatalf("got %+v %v, want a mismatch in field 4", resp, err)
	}
	if resp.ResponseCode != "" || resp.ApprovalCode != "" || resp.Amount != 0 {
		t.Fatalf("a refused reply leaked into the answer: %+v", resp)
	}
	if a, _ := sim.Account(acctRich); a.Held != 55_000 {
		t.Fatalf("bank holds %d, want the 55,000 it said", a.Held)
	}
	rev, err := c.Reverse(context.Background(), adviceFor(c, r, ""))
	if err != nil || rev.ResponseCode != iso.RCApproved {
		t.Fatalf("reversal: %+v %v", rev, err)
	}
	if a, _ := sim.Account(acctRich); a.Held != 0 {
		t.Fatalf("held %d after the reversal", a.Held)
	}
}
