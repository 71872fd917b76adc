package atmswitch_test

// Tests that each kill a mutation of one guard on the money path (issue 20;
// the list is scripts/mutate/guards.txt). Each was seen to fail with its
// guard removed by hand before it was kept.

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
	"github.com/softatm/softatm/ledger"
	atmswitch "github.com/softatm/softatm/switch"
)

// instance is a second switch process on e's database, bank link and
// signing keys, with a committer of its own that waits up to batchWait for
// company before it commits: the window between a Service's read and its
// conditional UPDATE, made wide enough for another instance to act in. A nil
// gate is a switch without Redis.
func (e *env) instance(t *testing.T, batchWait time.Duration, gate atmswitch.Gate) *atmswitch.Service {
	t.Helper()
	l := ledger.New(e.pool, ledger.WithBatch(64, batchWait))
	t.Cleanup(l.Close)
	return atmswitch.NewService(e.cfg, atmswitch.Deps{Pool: e.pool, Ledger: l, Bank: e.bank, Codes: e.codes,
		Gate: gate, Log: quietLog()})
}

func (e *env) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrentConfirmsBySameTeller: a teller's double tap (or a kiosk
// retrying without its idempotency key) sends two confirms at once. One
// receipt, one queued advice, one 0220 — the paid UPDATE's `state =
// 'claimed'` is what refuses the second, since both read the row claimed
// by this very teller.
func TestConcurrentConfirmsBySameTeller(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const rounds = 20
	for round := range rounds {
		is := e.issue(t, acctRich, 50_000)
		id := is.Withdrawal.ID
		if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
			t.Fatal(err)
		}
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range errs {
			wg.Go(func() {
				<-start
				_, errs[i] = e.svc.Confirm(ctx, teller1, id)
			})
		}
		close(start)
		wg.Wait()
		receipts := 0
		for _, err := range errs {
			// The refused confirm may be answered before the winner's batch
			// commits (the ledger hands an excluded unit its refusal at
			// once), and then reads the code still claimed by this teller:
			// EConflict. Either way it is refused and pays nothing.
			switch c := softatm.ErrorCode(err); {
			case err == nil:
				receipts++
			case c != softatm.ECodeUsed && c != softatm.EConflict:
				t.Fatalf("round %d: second confirm refused with %v, want %s", round, err, softatm.ECodeUsed)
			}
		}
		if receipts != 1 {
			t.Fatalf("round %d: %d receipts for one code, want 1", round, receipts)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM outbox WHERE withdrawal_id = $1 AND kind = 'advice'`, id); n != 1 {
			t.Fatalf("round %d: %d advices queued, want 1", round, n)
		}
	}
	e.drain(t)
	if n := e.sim.Received("0220"); n != rounds {
		t.Fatalf("bank got %d 0220s, want %d", n, rounds)
	}
	e.checkLedger(t)
}

// TestConfirmAfterClaimTakenOver: teller1 presses confirm just before its
// claim ends, and while that confirm is between its read (claimed by
// teller1) and its UPDATE, the claim lapses and teller2 on another instance
// takes it over.
// The paid UPDATE's `claimed_by = $2` refuses teller1: teller2 now holds
// the code and is counting its cash.
func TestConfirmAfterClaimTakenOver(t *testing.T) {
	t.Parallel()
	// Half a second of margin on each side of every step: the machine may
	// be loaded.
	const claimTTL, window = 3 * time.Second, 2 * time.Second // window: instance a's committer waits this long before its UPDATE
	e := newEnv(t, func(c *atmswitch.Config) { c.ClaimTTL = claimTTL; c.ClockSkew = 0 })
	ctx := context.Background()
	a := e.instance(t, window, e.gate)
	b := e.instance(t, 0, e.gate)
	is := e.issue(t, acctRich, 100_000)
	id := is.Withdrawal.ID
	if _, err := b.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil { // b: no batch wait, the claim starts now
		t.Fatal(err)
	}
	// teller1 confirms just before the claim ends (its read sees a live
	// claim of its own); the claim lapses while the unit waits, and teller2
	// takes it over before the UPDATE runs.
	time.Sleep(claimTTL - 500*time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := a.Confirm(ctx, teller1, id)
		done <- err
	}()
	time.Sleep(window / 2) // a has read the row; its unit waits for company; the claim has lapsed
	if _, err := b.Scan(ctx, teller2, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatalf("teller2 taking the lapsed claim over: %v", err)
	}
	wantCode(t, <-done, softatm.ECodeClaimed)
	w, err := e.svc.Get(ctx, "MB", id)
	if err != nil || w.State != atmswitch.StateClaimed || w.PaidBy != "" {
		t.Fatalf("after teller1's late confirm: state %s paid by %q (%v), want claimed and unpaid", w.State, w.PaidBy, err)
	}
	if _, err := b.Confirm(ctx, teller2, id); err != nil {
		t.Fatalf("teller2, who holds the claim, confirming: %v", err)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM outbox WHERE withdrawal_id = $1 AND kind = 'advice'`, id); n != 1 {
		t.Fatalf("%d advices queued, want 1", n)
	}
	e.checkLedger(t)
}

// TestConcurrentScansOneClaim: with Redis down every scan reaches the
// database; many counters scanning one code at once get one claim. The
// claim UPDATE's `claimed_by = $2 OR claim_until < $5` refuses the others,
// since all of them read the code reserved.
func TestConcurrentScansOneClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	s := e.instance(t, 20*time.Millisecond, nil)
	const tellers, rounds = 8, 10
	for round := range rounds {
		is := e.issue(t, acctRich, 50_000)
		var claims atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, tellers)
		for i := range tellers {
			wg.Go(func() {
				tl := atmswitch.Teller{UserID: uuid.NewString(), Username: "t", PostOffice: "LS-001", Kiosk: "KLS00101"}
				if i%2 == 1 {
					tl.Kiosk = "KLS00102"
				}
				<-start
				_, err := s.Scan(ctx, tl, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
				if err == nil {
					claims.Add(1)
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		if n := claims.Load(); n != 1 {
			t.Fatalf("round %d: %d counters hold the claim, want 1", round, n)
		}
		for _, err := range errs {
			if err != nil && softatm.ErrorCode(err) != softatm.ECodeClaimed {
				t.Fatalf("round %d: scan refused with %v, want %s", round, err, softatm.ECodeClaimed)
			}
		}
	}
}

// TestReleaseNeedsTheClaim: only the teller holding the claim can give it
// up; another counter's release changes nothing.
func TestReleaseNeedsTheClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	id := is.Withdrawal.ID
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.svc.Release(ctx, teller2, id), softatm.ECodeClaimed)
	if s := e.state(t, id); s != atmswitch.StateClaimed {
		t.Fatalf("state %s after another counter's release, want claimed", s)
	}
	if _, err := e.svc.Confirm(ctx, teller1, id); err != nil {
		t.Fatalf("teller1 confirming its own claim: %v", err)
	}
}

// TestLateApprovalIssuesNoCode: the 0110 comes after the sweeper failed the
// request and queued its reversal; no code is issued and the hold is
// released. reserve's `state = 'requested'` is the guard.
func TestLateApprovalIssuesNoCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) {
		c.RequestedMax, c.ClockSkew, c.AuthTimeout = 0, 0, 5*time.Second
	})
	ctx := context.Background()
	e.sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultDelay, DelayMs: 1500})
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Create(ctx, "MB", atmswitch.CreateRequest{Account: acctRich, Amount: 100_000, PhoneLast4: phoneRich})
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // the 0100 is at the bank
	moved, err := e.svc.Sweep(ctx)
	if err != nil || moved != 1 {
		t.Fatalf("sweep moved %d (%v), want the request failed", moved, err)
	}
	wantCode(t, <-done, softatm.EBankUnavailable)
	if n := e.count(t, `SELECT COUNT(*) FROM withdrawals WHERE state = 'failed' AND qr_payload = ''`); n != 1 {
		t.Fatalf("%d failed withdrawals without a code, want 1", n)
	}
	e.sim.ClearFaults()
	e.drain(t)
	for _, h := range e.sim.Holds() {
		if h.State != "released" {
			t.Fatalf("hold %s is %s, want released", h.ApprovalCode, h.State)
		}
	}
	e.checkLedger(t)
}

// TestSweepLeavesLiveCodes: the sweeper expires only codes past their
// expiry and frees only claims past their end.
func TestSweepLeavesLiveCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	reserved := e.issue(t, acctRich, 100_000)
	claimed := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: claimed.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	moved, err := e.svc.Sweep(ctx)
	if err != nil || moved != 0 {
		t.Fatalf("sweep moved %d (%v), want nothing", moved, err)
	}
	if s := e.state(t, reserved.Withdrawal.ID); s != atmswitch.StateReserved {
		t.Fatalf("live code is %s after a sweep, want reserved", s)
	}
	if _, err := e.svc.Confirm(ctx, teller1, claimed.Withdrawal.ID); err != nil {
		t.Fatalf("confirming a live claim after a sweep: %v", err)
	}
	if n := e.sim.Received("0420"); n != 0 {
		t.Fatalf("bank got %d reversals, want none", n)
	}
}

// TestExpiredNumericCodeRefused: a numeric code is not a signed QR, so
// Verify never sees its expiry; Scan's own check refuses it, before the
// till (a dead code is "expired", not "come back when the till has cash")
// and before any Redis lease.
func TestExpiredNumericCodeRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.CodeTTL = time.Second; c.ClockSkew = 0 })
	ctx := context.Background()
	is := e.issue(t, acctRich, 500_000)
	time.Sleep(2100 * time.Millisecond) // codes carry whole seconds
	scan := atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich}
	_, err := e.svc.Scan(ctx, teller1, scan)
	wantCode(t, err, softatm.ECodeExpired)
	_, err = e.svc.Scan(ctx, teller3, scan) // LS-003 holds only 100,000
	wantCode(t, err, softatm.ECodeExpired)
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateReserved {
		t.Fatalf("state %s, want reserved (for the sweeper)", s)
	}
	if keys, err := e.redis.Keys(ctx, "*claim:"+is.Withdrawal.ID.String()).Result(); err != nil || len(keys) != 0 {
		t.Fatalf("claim leases %v (%v) for an expired code, want none", keys, err)
	}
}

// TestAccountDailyLimit reaches the switch's own per-account limit (set
// below the bank's, so the refusal is ours: no 0100 leaves). What counts:
// codes issued in the last 24 hours that are not cancelled, expired,
// declined or failed, paid or not.
func TestAccountDailyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.AccountDailyMax = 1_000_000 })
	ctx := context.Background()
	create := func(amount int64) (atmswitch.Issued, error) {
		return e.svc.Create(ctx, "MB", atmswitch.CreateRequest{Account: acctRich, Amount: amount, PhoneLast4: phoneRich})
	}
	age := func(id uuid.UUID, d time.Duration) {
		t.Helper()
		if _, err := e.pool.Exec(ctx, `UPDATE withdrawals SET created_at = now() - $2::interval WHERE id = $1`,
			id, d.String()); err != nil {
			t.Fatal(err)
		}
	}
	first := e.issue(t, acctRich, 600_000) // reserved, not paid
	age(first.Withdrawal.ID, 2*time.Hour)
	sent := e.sim.Received("0100")
	_, err := create(500_000)
	wantCode(t, err, softatm.ELimit)
	if n := e.sim.Received("0100"); n != sent {
		t.Fatalf("bank got %d more 0100s for a withdrawal over the switch's limit", n-sent)
	}
	second, err := create(400_000) // exactly the limit
	if err != nil {
		t.Fatalf("a withdrawal reaching the limit exactly: %v", err)
	}
	// A cancelled code no longer counts.
	if _, err := e.svc.Cancel(ctx, "MB", first.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	third, err := create(600_000)
	if err != nil {
		t.Fatalf("after the cancel: %v", err)
	}
	// One issued 25 hours ago is out of the window.
	age(second.Withdrawal.ID, 25*time.Hour)
	if _, err := create(400_000); err != nil {
		t.Fatalf("with the oldest code out of the window: %v", err)
	}
	_, err = create(50_000)
	wantCode(t, err, softatm.ELimit)
	_ = third
}

// refusingBank is the real link for 0100s and a bank that refuses every
// 0220 and 0420 with the given response codes.
type refusingBank struct {
	atmswitch.Bank
	advice, reversal   string
	advices, reversals atomic.Int32
}

func (b *refusingBank) Advise(ctx context.Context, r iso.AdviceRequest) (iso.AdviceResponse, error) {
	b.advices.Add(1)
	return iso.AdviceResponse{ResponseCode: b.advice}, nil
}

func (b *refusingBank) Reverse(ctx context.Context, r iso.AdviceRequest) (iso.AdviceResponse, error) {
	b.reversals.Add(1)
	return iso.AdviceResponse{ResponseCode: b.reversal}, nil
}

// TestBankRefusesAdviceAndReversal: an answer is not an acknowledgement.
// The bank refuses a 0220 (05) and a 0420 (12): neither message is marked
// done, the paid withdrawal does not complete, and both land on the
// exceptions list with the bank's code for finance to decide on.
func TestBankRefusesAdviceAndReversal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	bank := &refusingBank{Bank: e.bank, advice: iso.RCDoNotHonour, reversal: iso.RCInvalidTransaction}
	ocfg := atmswitch.DefaultOutboxConfig()
	ocfg.MaxAttempts, ocfg.BackoffMin, ocfg.BackoffMax = 3, time.Millisecond, 5*time.Millisecond
	e.outbox = atmswitch.NewOutbox(ocfg, e.pool, e.ledger, bank, quietLog(), nil, nil)

	paid := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: paid.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, paid.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	cancelled := e.issue(t, acctRich, 200_000)
	if _, err := e.svc.Cancel(ctx, "MB", cancelled.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	e.drain(t)

	for _, want := range []struct {
		id   uuid.UUID
		kind string
		rc   string
	}{
		{paid.Withdrawal.ID, "advice", iso.RCDoNotHonour},
		{cancelled.Withdrawal.ID, "reversal", iso.RCInvalidTransaction},
	} {
		var state, rc string
		err := e.pool.QueryRow(ctx, `SELECT state, response_code FROM outbox WHERE withdrawal_id = $1 AND kind = $2`,
			want.id, want.kind).Scan(&state, &rc)
		if err != nil {
			t.Fatal(err)
		}
		if state != "exception" || rc != want.rc {
			t.Errorf("%s refused with %s: outbox %s with %q, want exception with %q", want.kind, want.rc, state, rc, want.rc)
		}
	}
	if s := e.state(t, paid.Withdrawal.ID); s != atmswitch.StatePaid {
		t.Errorf("withdrawal whose capture the bank refused is %s, want paid", s)
	}
	ex, err := e.svc.Exceptions(ctx)
	if err != nil || len(ex) != 2 {
		t.Fatalf("exceptions %+v (%v), want the advice and the reversal", ex, err)
	}
	if a, r := bank.advices.Load(), bank.reversals.Load(); a != 1 || r != 1 {
		t.Fatalf("bank asked %d times to capture and %d to release, want once each", a, r)
	}
}
