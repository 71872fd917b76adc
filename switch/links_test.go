package atmswitch_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
	atmswitch "github.com/softatm/softatm/switch"
)

// The AGR bank's own simulator holds this account (in AGR's range 970405).
const acctAGR = "9704050000000099"

// logBuffer is a log sink safe for the links' goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// linksEnv is the switch with one link per bank: MB on env's simulator,
// AGR on a simulator of its own.
type linksEnv struct {
	*env
	agr    *banksim.Sim
	agrAt  string
	links  *atmswitch.Links
	svc    *atmswitch.Service
	logs   *logBuffer
	cancel context.CancelFunc
}

// Link settings of these tests: short, so that a silent bank is found out
// in a fraction of a second.
const (
	linksAuthTimeout     = 300 * time.Millisecond
	linksBreakerFailures = 2
	linksBreakerCooldown = 500 * time.Millisecond
)

// newLinksEnv starts the two banks; opts are AGR's simulator's.
func newLinksEnv(t *testing.T, opts ...banksim.Option) *linksEnv {
	t.Helper()
	e := newEnv(t, func(c *atmswitch.Config) { c.AuthTimeout = 5 * time.Second })
	le := &linksEnv{env: e, logs: &logBuffer{}}
	le.agr = banksim.New([]banksim.Account{
		{Number: acctAGR, Bank: "AGR", Holder: "DO VAN HAI", Balance: 50_000_000},
	}, append([]banksim.Option{banksim.WithLogger(quietLog()), banksim.WithBank("AGR")}, opts...)...)
	addr, err := le.agr.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	le.agrAt = addr.String()
	t.Cleanup(func() { le.agr.Close() })
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE banks SET link_addr = CASE code WHEN 'MB' THEN $1 ELSE $2 END`,
		e.bank.Addr(), le.agrAt); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(le.logs, nil))
	dial := func(lc atmswitch.LinkConfig, observe atmswitch.ISOObserver) atmswitch.BankLink {
		return iso.NewClient(lc.Addr, iso.WithLogger(log.With("bank", lc.Key)), iso.WithObserver(observe),
			iso.WithRequestTimeout(linksAuthTimeout), iso.WithBreaker(linksBreakerFailures, linksBreakerCooldown),
			iso.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond))
	}
	cfg := atmswitch.DefaultLinksConfig()
	cfg.Refresh = 100 * time.Millisecond
	cfg.Outbox.Poll = 20 * time.Millisecond
	cfg.Outbox.BackoffMin, cfg.Outbox.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	le.links = atmswitch.NewLinks(cfg, dial, e.pool, e.ledger, log, e.m, nil)
	if err := le.links.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	le.cancel = cancel
	done := make(chan struct{})
	go func() { le.links.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; le.links.Close() })
	le.svc = atmswitch.NewService(e.cfg, atmswitch.Deps{Pool: e.pool, Ledger: e.ledger, Links: le.links, Codes: e.codes,
		Gate: e.gate, Log: log, Metrics: e.m})
	le.waitLinks(t, "both links up", func(s atmswitch.LinkStatus) bool { return s.Up })
	return le
}

// waitLinks waits until every link satisfies cond.
func (le *linksEnv) waitLinks(t *testing.T, what string, cond func(atmswitch.LinkStatus) bool) {
	t.Helper()
	waitUntil(t, what, func() bool {
		st := le.links.Status()
		for _, s := range st {
			if !cond(s) {
				return false
			}
		}
		return len(st) > 0
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (le *linksEnv) create(bank, account string, amount int64) (atmswitch.Issued, error) {
	return le.svc.Create(context.Background(), bank, atmswitch.CreateRequest{Account: account, Amount: amount,
		Currency: "VND", HolderName: "Nguyen Van An", PhoneLast4: "1234"})
}

func (le *linksEnv) mustCreate(t *testing.T, bank, account string, amount int64) atmswitch.Issued {
	t.Helper()
	is, err := le.create(bank, account, amount)
	if err != nil {
		t.Fatalf("create for %s: %v", bank, err)
	}
	return is
}

// pay scans and confirms a code at teller1's counter: its 0220 is queued.
func (le *linksEnv) pay(t *testing.T, is atmswitch.Issued) {
	t.Helper()
	ctx := context.Background()
	if _, err := le.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := le.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	le.links.Kick()
}

func (le *linksEnv) waitState(t *testing.T, id uuid.UUID, want atmswitch.State) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("withdrawal %s %s", id, want), func() bool { return le.state(t, id) == want })
}

// TestLinksRouteEachBankOnItsOwnLink: an MB withdrawal's 0100 and 0220 go
// to MB's simulator only, AGR's to AGR's only. On the old code (one link,
// -bank, for every bank) AGR's withdrawal went to MB's simulator.
func TestLinksRouteEachBankOnItsOwnLink(t *testing.T) {
	t.Parallel()
	le := newLinksEnv(t)
	mb := le.mustCreate(t, "MB", acctRich, 100_000)
	agr := le.mustCreate(t, "AGR", acctAGR, 200_000)
	if got := le.sim.Received(iso.MTIAuthRequest); got != 1 {
		t.Errorf("MB's simulator got %d 0100s, want 1 (its own)", got)
	}
	if got := le.agr.Received(iso.MTIAuthRequest); got != 1 {
		t.Errorf("AGR's simulator got %d 0100s, want 1 (its own)", got)
	}
	le.pay(t, mb)
	le.pay(t, agr)
	le.waitState(t, mb.Withdrawal.ID, atmswitch.StateCompleted)
	le.waitState(t, agr.Withdrawal.ID, atmswitch.StateCompleted)
	if a, b := le.sim.Received(iso.MTIAdvice), le.agr.Received(iso.MTIAdvice); a != 1 || b != 1 {
		t.Errorf("0220s: MB's simulator %d, AGR's %d; want 1 each", a, b)
	}
	holds := le.agr.Holds()
	if len(holds) != 1 || holds[0].RRN != agr.Withdrawal.RRN || holds[0].State != banksim.HoldCaptured {
		t.Errorf("AGR's holds %+v, want its withdrawal's, captured", holds)
	}
	for _, h := range le.sim.Holds() {
		if h.RRN == agr.Withdrawal.RRN {
			t.Error("MB's simulator holds AGR's withdrawal")
		}
	}
	le.checkLedger(t)
}

// TestLinksDeadBankWaitsInItsQueue: with AGR's bank gone, AGR's creates are
// refused at once with bank_unavailable and nothing is written; its advice
// waits in its queue, untried; MB's withdrawals go on as before; when AGR
// returns, its advice is delivered.
func TestLinksDeadBankWaitsInItsQueue(t *testing.T) {
	t.Parallel()
	le := newLinksEnv(t)
	agr := le.mustCreate(t, "AGR", acctAGR, 200_000)
	le.agr.Close()
	le.waitLinks(t, "AGR's link down", func(s atmswitch.LinkStatus) bool { return s.Key != "AGR" || !s.Up })

	start := time.Now()
	_, err := le.create("AGR", acctAGR, 100_000)
	took := time.Since(start)
	wantCode(t, err, softatm.EBankUnavailable)
	t.Logf("a create for the dead bank was refused in %v", took)
	if took > time.Second {
		t.Errorf("refused after %v, want fast", took)
	}
	var rows int
	if err := le.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM withdrawals WHERE bank_code = 'AGR'`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("AGR has %d withdrawals (%v), want only the first: a refused create writes nothing", rows, err)
	}

	le.pay(t, agr)
	mb := le.mustCreate(t, "MB", acctRich, 100_000)
	le.pay(t, mb)
	le.waitState(t, mb.Withdrawal.ID, atmswitch.StateCompleted)
	time.Sleep(200 * time.Millisecond) // several passes of AGR's worker
	var attempts int
	if err := le.pool.QueryRow(context.Background(), `SELECT attempts FROM outbox WHERE withdrawal_id = $1 AND state = 'pending'`,
		agr.Withdrawal.ID).Scan(&attempts); err != nil {
		t.Fatalf("AGR's advice is not waiting: %v", err)
	}
	if attempts != 0 {
		t.Errorf("AGR's advice was tried %d times while its link was down, want 0 (it waits)", attempts)
	}
	if got := bankGauge(t, le.m, "softatm_bank_outbox_pending", "AGR"); got != 1 {
		t.Errorf("softatm_bank_outbox_pending{bank=AGR} = %v, want 1", got)
	}
	if got := bankGauge(t, le.m, "softatm_bank_link_up", "AGR"); got != 0 {
		t.Errorf("softatm_bank_link_up{bank=AGR} = %v, want 0", got)
	}

	if _, err := le.agr.Listen(le.agrAt); err != nil {
		t.Fatal(err)
	}
	le.waitState(t, agr.Withdrawal.ID, atmswitch.StateCompleted)
	if got := le.agr.Received(iso.MTIAdvice); got != 1 {
		t.Errorf("AGR got %d 0220s, want 1 (a first send, not a repeat)", got)
	}
	le.checkLedger(t)
}

// TestLinksBreakerRefusesSilentBankFast: AGR's bank keeps its connection
// but answers nothing. Its first creates wait out the request time-out;
// then the circuit opens and its creates are refused at once, unsent,
// while MB's are served; once AGR answers again, its creates go through and
// the reversals of the unanswered ones are delivered.
func TestLinksBreakerRefusesSilentBankFast(t *testing.T) {
	t.Parallel()
	le := newLinksEnv(t)
	le.agr.SetFault("", banksim.Fault{Kind: banksim.FaultDrop})
	for range linksBreakerFailures {
		_, err := le.create("AGR", acctAGR, 100_000)
		wantCode(t, err, softatm.EBankUnavailable)
	}
	sent := le.agr.Received(iso.MTIAuthRequest)
	start := time.Now()
	_, err := le.create("AGR", acctAGR, 100_000)
	took := time.Since(start)
	wantCode(t, err, softatm.EBankUnavailable)
	t.Logf("with AGR's circuit open a create was refused in %v (request time-out %v)", took, linksAuthTimeout)
	if took > time.Second {
		t.Errorf("refused after %v, want fast", took)
	}
	if got := le.agr.Received(iso.MTIAuthRequest); got != sent {
		t.Errorf("AGR received %d more 0100s with its circuit open, want none", got-sent)
	}
	mb := le.mustCreate(t, "MB", acctRich, 100_000)
	if mb.Withdrawal.State != atmswitch.StateReserved {
		t.Fatalf("MB's create: %s", mb.Withdrawal.State)
	}

	le.agr.ClearFaults()
	waitUntil(t, "AGR's circuit to let a probe through", func() bool {
		_, err := le.create("AGR", acctAGR, 100_000)
		return err == nil
	})
	// The unanswered 0100s were failed; their 0420s reach AGR.
	waitUntil(t, "the reversals of the unanswered creates", func() bool {
		var pending int
		_ = le.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`).Scan(&pending)
		return pending == 0
	})
	if got := le.agr.Received(iso.MTIReversal); got < linksBreakerFailures {
		t.Errorf("AGR got %d 0420s, want at least %d", got, linksBreakerFailures)
	}
	le.checkLedger(t)
}

// TestLinksHotReload: edits to the banks table reach a running switch
// without a restart, and are logged: a new range, a new link address, a
// suspension (creates refused, advices still delivered).
func TestLinksHotReload(t *testing.T) {
	t.Parallel()
	le := newLinksEnv(t)
	ctx := context.Background()
	const moved = "9704990000000011"
	_, err := le.create("AGR", moved, 100_000)
	wantCode(t, err, softatm.EAccountNotOfBank)
	le.agr.Close()
	other := banksim.New([]banksim.Account{{Number: moved, Bank: "AGR", Holder: "DO VAN HAI", Balance: 50_000_000},
		{Number: acctAGR, Bank: "AGR", Holder: "DO VAN HAI", Balance: 50_000_000}}, banksim.WithLogger(quietLog()))
	addr, err := other.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	if _, err := le.pool.Exec(ctx, `UPDATE banks SET account_ranges = '{970405,970499}', link_addr = $1 WHERE code = 'AGR'`, addr.String()); err != nil {
		t.Fatal(err)
	}
	var is atmswitch.Issued
	waitUntil(t, "the new range and link in force", func() bool {
		is, err = le.create("AGR", moved, 100_000)
		return err == nil
	})
	if got := other.Received(iso.MTIAuthRequest); got != 1 {
		t.Errorf("AGR's new address got %d 0100s, want 1", got)
	}
	logs := le.logs.String()
	for _, want := range []string{`msg="bank changed" component=links bank=AGR changed=ranges,link`, `msg="bank link changed; reconnecting" component=links bank=AGR`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}

	// Suspended: no new withdrawal, but the paid one's advice goes out.
	if _, err := le.pool.Exec(ctx, `UPDATE banks SET state = 'suspended' WHERE code = 'AGR'`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the suspension in force", func() bool {
		_, err := le.create("AGR", acctAGR, 100_000)
		return softatm.ErrorCode(err) == softatm.EBankUnavailable
	})
	le.pay(t, is)
	le.waitState(t, is.Withdrawal.ID, atmswitch.StateCompleted)
	if !strings.Contains(le.logs.String(), `msg="bank changed" component=links bank=AGR changed=state`) {
		t.Error("the suspension was not logged")
	}
	if _, err := le.create("MB", acctRich, 100_000); err != nil {
		t.Errorf("MB's create while AGR is suspended: %v", err)
	}
}

// TestLinksUnknownBankHasNoLink: a bank with no address of its own and no
// default link is refused, nothing sent.
func TestLinksUnknownBankHasNoLink(t *testing.T) {
	t.Parallel()
	le := newLinksEnv(t)
	if _, err := le.pool.Exec(context.Background(), `UPDATE banks SET link_addr = '' WHERE code = 'AGR'`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "AGR's link closed", func() bool {
		_, err := le.links.For("AGR")
		return err != nil
	})
	_, err := le.create("AGR", acctAGR, 100_000)
	wantCode(t, err, softatm.EBankUnavailable)
	if le.agr.Received(iso.MTIAuthRequest) != 0 {
		t.Error("a bank with no link got a 0100")
	}
}

// TestOneIdentityPerWithdrawal: AGR's bank pairs an advice or a reversal
// with its hold by the original STAN (field 90) and terminal (41), and
// wants the hold's RRN (37) and card acceptor (42) on it. The 0220 of a
// paid code and the 0420 of a cancelled one both pair. On the old code the
// 0220 carried the kiosk's terminal and the post office's code, the bank
// answered 12, and the advice ended as an exception with the hold still
// held.
func TestOneIdentityPerWithdrawal(t *testing.T) {
	t.Parallel()
	le := newLinksEnv(t, banksim.WithStrictPairing())
	paid := le.mustCreate(t, "AGR", acctAGR, 200_000)
	cancelled := le.mustCreate(t, "AGR", acctAGR, 100_000)
	le.pay(t, paid)
	if _, err := le.svc.Cancel(context.Background(), "AGR", cancelled.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	le.links.Kick()
	le.waitState(t, paid.Withdrawal.ID, atmswitch.StateCompleted)
	waitUntil(t, "the 0420 answered", func() bool {
		var pending int
		_ = le.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`).Scan(&pending)
		return pending == 0
	})
	ex, err := le.svc.Exceptions(context.Background())
	if err != nil || len(ex) != 0 {
		t.Fatalf("exceptions %+v (%v), want none", ex, err)
	}
	want := map[string]string{paid.Withdrawal.RRN: banksim.HoldCaptured, cancelled.Withdrawal.RRN: banksim.HoldReleased}
	for _, h := range le.agr.Holds() {
		if want[h.RRN] != h.State {
			t.Errorf("hold %s is %s, want %s", h.RRN, h.State, want[h.RRN])
		}
	}
	le.checkLedger(t)
}

// bankGauge reads a gauge labelled bank from the metrics' registry.
func bankGauge(t *testing.T, m *atmswitch.Metrics, name, bank string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "bank" && l.GetValue() == bank {
					return metric.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{bank=%q}", name, bank)
	return 0
}
