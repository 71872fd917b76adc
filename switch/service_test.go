package atmswitch_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema/schematest"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/replay"
	switchschema "github.com/softatm/softatm/switch/schema"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

const (
	acctRich  = "9704000000000011"
	acctPoor  = "9704000000000037"
	acctLimit = "9704050000000023"
	acctBlock = "9704050000000031"
	// acctMarkup's bank gives a holder name with markup on verification
	// (a bank that lies, or was broken into).
	acctMarkup = "9704000000000045"
	phoneRich  = "5611"
	tillCash   = 10_000_000
	smallTill  = 100_000
	currencyVN = "704"
)

// env is one switch on real servers: a fresh database, the shared Redis
// with a prefix of its own, and a bank simulator on loopback.
type env struct {
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
	sim    *banksim.Sim
	bank   *iso.Client
	gate   *replay.Guard
	redis  *redis.Client
	svc    *atmswitch.Service
	outbox *atmswitch.Outbox
	cfg    atmswitch.Config
	m      *atmswitch.Metrics
	prefix string        // this env's Redis keys
	codes  *code.Keyring // signs and verifies for every Service of this env
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, tweak ...func(*atmswitch.Config)) *env {
	t.Helper()
	ctx := context.Background()
	url := schematest.MustMigratedDB(t, switchschema.All()...)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Batching on, as serve runs it: every write of the switch is a unit of
	// the committer's batches (ledger.Run).
	e := &env{pool: pool, ledger: ledger.New(pool, ledger.WithBatch(64, time.Millisecond))}
	t.Cleanup(e.ledger.Close)

	e.sim = banksim.New([]banksim.Account{
		{Number: acctRich, Bank: "MB", Holder: "NGUYEN VAN AN", Phone: "0912345611", Balance: 50_000_000, DailyLimit: 40_000_000},
		{Number: acctPoor, Bank: "MB", Holder: "LE VAN CUONG", Phone: "0912345637", Balance: 100_000, DailyLimit: 5_000_000},
		{Number: acctLimit, Bank: "AGR", Holder: "PHAM VAN EM", Phone: "0987654323", Balance: 8_000_000, DailyLimit: 300_000},
		{Number: acctBlock, Bank: "AGR", Holder: "VU THI GIANG", Phone: "0987654331", Balance: 1_000_000, DailyLimit: 2_000_000, Blocked: true},
		{Number: acctMarkup, Bank: "MB", Holder: "<img src=x onerror=alert(1)>", Phone: "0912345645", Balance: 1_000_000, DailyLimit: 2_000_000},
	}, banksim.WithLogger(quietLog()))
	addr, err := e.sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sim.Close() })
	// No circuit breaker: these tests drive the outbox through runs of
	// time-outs and expect the next message to go out (iso's breaker tests
	// and links_test.go cover the breaker).
	e.bank = iso.NewClient(addr.String(), iso.WithLogger(quietLog()), iso.WithRequestTimeout(2*time.Second), iso.WithBreaker(0, 0))
	t.Cleanup(func() { e.bank.Close() })
	waitUp(t, e.bank)

	rurl, prefix := localsrv.MustRedis(t)
	opt, _ := redis.ParseURL(rurl)
	e.redis = redis.NewClient(opt)
	t.Cleanup(func() { e.redis.Close() })
	e.gate = replay.New(e.redis, prefix)
	e.prefix = prefix

	store := code.NewMemKeyStore()
	if _, err := code.Rotate(ctx, store, "K1", time.Now()); err != nil {
		t.Fatal(err)
	}
	keyring := code.NewKeyring(store)
	if err := keyring.Load(ctx); err != nil {
		t.Fatal(err)
	}

	e.codes = keyring
	seed(t, pool, e.ledger)
	e.cfg = atmswitch.DefaultConfig()
	e.cfg.Secret = []byte("test-secret")
	e.cfg.AuthTimeout = 2 * time.Second
	for _, f := range tweak {
		f(&e.cfg)
	}
	m := atmswitch.NewMetrics(nil)
	e.m = m
	ocfg := atmswitch.DefaultOutboxConfig()
	ocfg.BackoffMin, ocfg.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	e.outbox = atmswitch.NewOutbox(ocfg, pool, e.ledger, e.bank, quietLog(), m, nil)
	e.svc = atmswitch.NewService(e.cfg, atmswitch.Deps{Pool: pool, Ledger: e.ledger, Bank: e.bank, Codes: keyring,
		Gate: e.gate, Log: quietLog(), Metrics: m})
	return e
}

func waitUp(t *testing.T, c *iso.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Up() {
		if time.Now().After(deadline) {
			t.Fatal("bank link never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// seed creates two banks, two post offices (one with little cash), their
// kiosks and ledger accounts.
func seed(t *testing.T, pool *pgxpool.Pool, l *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO banks (code, name, fee_amount, account_ranges) VALUES ('MB', 'MB Bank', 0, '{970400}'), ('AGR', 'Agribank', 2000, '{970405}')`,
		`INSERT INTO post_offices (code, name) VALUES ('LS-001', 'Dong Dang'), ('LS-003', 'Van Quan')`,
		`INSERT INTO kiosks (id, post_office) VALUES ('KLS00101', 'LS-001'), ('KLS00102', 'LS-001'), ('KLS00301', 'LS-003')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{ledger.AccountInFlight, ledger.AccountFees, ledger.AccountSettlement,
		ledger.ReceivableCode("MB"), ledger.ReceivableCode("AGR"), ledger.PayableCode("MB"), ledger.PayableCode("AGR")} {
		if err := l.EnsureAccount(ctx, a, currencyVN, 0); err != nil {
			t.Fatal(err)
		}
	}
	for po, cash := range map[string]int64{"LS-001": tillCash, "LS-003": smallTill} {
		if err := l.EnsureAccount(ctx, ledger.TillCode(po), currencyVN, ledger.FlagCreditsMustNotExceedDebits); err != nil {
			t.Fatal(err)
		}
		if err := l.Replenish(ctx, po, cash, currencyVN, uuid.New()); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	teller1 = atmswitch.Teller{UserID: "u1", Username: "teller1", PostOffice: "LS-001", Kiosk: "KLS00101"}
	teller2 = atmswitch.Teller{UserID: "u2", Username: "teller2", PostOffice: "LS-001", Kiosk: "KLS00102"}
	teller3 = atmswitch.Teller{UserID: "u3", Username: "teller3", PostOffice: "LS-003", Kiosk: "KLS00301"}
)

func (e *env) issue(t *testing.T, account string, amount int64) atmswitch.Issued {
	t.Helper()
	is, err := e.svc.Create(context.Background(), "MB", atmswitch.CreateRequest{Account: account, Amount: amount,
		Currency: "VND", HolderName: "Nguyen Van An", PhoneLast4: phoneRich})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return is
}

func (e *env) state(t *testing.T, id uuid.UUID) atmswitch.State {
	t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), `SELECT state FROM withdrawals WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return atmswitch.State(s)
}

func (e *env) drain(t *testing.T) {
	t.Helper()
	for range 50 {
		n, err := e.outbox.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var pending int
		if err := e.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if n == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	e.dumpOutbox(t)
	t.Fatal("outbox did not drain")
}

// checkLedger runs the ledger's invariants and the switch's (what its
// withdrawals must agree with in the ledger), as `softatm admin check` does.
func (e *env) checkLedger(t *testing.T) {
	t.Helper()
	for _, check := range []func(context.Context, *pgxpool.Pool) ([]ledger.CheckResult, error){ledger.Check, atmswitch.Check} {
		res, err := check(context.Background(), e.pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if !r.OK {
				t.Errorf("check %s failed: %s", r.Name, r.Detail)
			}
		}
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := softatm.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestHappyPathThroughEveryComponent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 500_000)
	if is.Withdrawal.State != atmswitch.StateReserved || is.Withdrawal.QRPayload == "" || !code.ValidNumeric(is.Numeric) {
		t.Fatalf("issued %+v numeric %q", is.Withdrawal, is.Numeric)
	}
	if a, _ := e.sim.Account(acctRich); a.Held != 500_000 {
		t.Fatalf("bank holds %d, want 500000", a.Held)
	}
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil {
		t.Fatal(err)
	}
	if w.Amount != 500_000 || w.HolderNameMasked != "N***** V** A*" {
		t.Fatalf("scan shows %d %q", w.Amount, w.HolderNameMasked)
	}
	rc, err := e.svc.Confirm(ctx, teller1, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Amount != 500_000 || rc.PostOffice != "LS-001" || rc.Teller != "teller1" {
		t.Fatalf("receipt %+v", rc)
	}
	if s := e.state(t, w.ID); s != atmswitch.StatePaid {
		t.Fatalf("state %s, want paid", s)
	}
	till, err := e.ledger.Account(ctx, ledger.TillCode("LS-001"))
	if err != nil {
		t.Fatal(err)
	}
	if cash := till.DebitsPosted - till.CreditsPosted; cash != tillCash-500_000 {
		t.Fatalf("till holds %d, want %d", cash, tillCash-500_000)
	}
	e.drain(t)
	if s := e.state(t, w.ID); s != atmswitch.StateCompleted {
		t.Fatalf("state %s, want completed", s)
	}
	a, _ := e.sim.Account(acctRich)
	if a.Held != 0 || a.Balance != 50_000_000-500_000 {
		t.Fatalf("bank: held %d balance %d", a.Held, a.Balance)
	}
	// A second confirm, by the same teller or another, changes nothing.
	_, err = e.svc.Confirm(ctx, teller1, w.ID)
	wantCode(t, err, softatm.ECodeUsed)
	_, err = e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeUsed)
	e.checkLedger(t)
}

// TestCancelRefusesAClaimedOrPaidCode: the bank's app learns why, in the
// error vocabulary, and nothing changes.
func TestCancelRefusesAClaimedOrPaidCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 300_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Cancel(ctx, "MB", is.Withdrawal.ID)
	wantCode(t, err, softatm.ECodeClaimed)
	if _, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Cancel(ctx, "MB", is.Withdrawal.ID)
	wantCode(t, err, softatm.ECodeUsed)
	if st := e.state(t, is.Withdrawal.ID); st != atmswitch.StatePaid && st != atmswitch.StateCompleted {
		t.Fatalf("state %s after the refused cancels, want paid", st)
	}
	e.checkLedger(t)
}

func TestCancelReleasesHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 300_000)
	w, err := e.svc.Cancel(ctx, "MB", is.Withdrawal.ID)
	if err != nil || w.State != atmswitch.StateCancelled {
		t.Fatalf("cancel: %v %s", err, w.State)
	}
	// Cancelling twice is not an error and queues nothing more.
	if _, err := e.svc.Cancel(ctx, "MB", is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Cancel(ctx, "AGR", is.Withdrawal.ID); softatm.ErrorCode(err) != softatm.ENotFound {
		t.Fatalf("another bank cancelled it: %v", err)
	}
	e.drain(t)
	for _, h := range e.sim.Holds() {
		if h.State != "released" {
			t.Fatalf("hold %s is %s, want released", h.ApprovalCode, h.State)
		}
	}
	if n := e.sim.Received("0420"); n != 1 {
		t.Fatalf("bank got %d reversals, want 1", n)
	}
	_, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeCancelled)
	e.checkLedger(t)
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	good := atmswitch.CreateRequest{Account: acctRich, Amount: 100_000, Currency: "VND", PhoneLast4: "1234"}
	for _, tc := range []struct {
		name string
		mut  func(*atmswitch.CreateRequest)
		code string
	}{
		{"zero amount", func(r *atmswitch.CreateRequest) { r.Amount = 0 }, softatm.EInvalidAmount},
		{"negative amount", func(r *atmswitch.CreateRequest) { r.Amount = -50_000 }, softatm.EInvalidAmount},
		{"over the limit", func(r *atmswitch.CreateRequest) { r.Amount = 50_000_000 }, softatm.EInvalidAmount},
		{"not a note multiple", func(r *atmswitch.CreateRequest) { r.Amount = 105_500 }, softatm.EInvalidAmount},
		{"bad account", func(r *atmswitch.CreateRequest) { r.Account = "12ab" }, softatm.EInvalid},
		{"bad phone", func(r *atmswitch.CreateRequest) { r.PhoneLast4 = "12" }, softatm.EInvalid},
		{"bad currency", func(r *atmswitch.CreateRequest) { r.Currency = "USD" }, softatm.EInvalid},
	} {
		r := good
		tc.mut(&r)
		_, err := e.svc.Create(ctx, "MB", r)
		if got := softatm.ErrorCode(err); got != tc.code {
			t.Errorf("%s: code %q, want %q (%v)", tc.name, got, tc.code, err)
		}
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT COUNT(*) FROM withdrawals`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("withdrawals after bad input: %d %v", n, err)
	}
	if got := e.sim.Received("0100"); got != 0 {
		t.Fatalf("bank received %d requests for bad input", got)
	}
}

func TestBankRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		bank    string
		account string
		amount  int64
		code    string
	}{
		{"MB", "9704009999999999", 100_000, softatm.EUnknownAccount},
		{"MB", acctPoor, 200_000, softatm.EDeclined},   // 51 insufficient funds
		{"AGR", acctLimit, 500_000, softatm.ELimit},    // 61 over the daily limit
		{"AGR", acctBlock, 100_000, softatm.EDeclined}, // 05 do not honour
	} {
		_, err := e.svc.Create(ctx, tc.bank, atmswitch.CreateRequest{Account: tc.account, Amount: tc.amount, PhoneLast4: "1234"})
		if got := softatm.ErrorCode(err); got != tc.code {
			t.Errorf("account %s: code %q, want %q (%v)", tc.account, got, tc.code, err)
		}
	}
	var declined int
	if err := e.pool.QueryRow(ctx, `SELECT COUNT(*) FROM withdrawals WHERE state = 'declined'`).Scan(&declined); err != nil || declined != 4 {
		t.Fatalf("declined rows %d (%v), want 4", declined, err)
	}
	e.checkLedger(t)
}

func TestTamperedCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	qr := is.Withdrawal.QRPayload
	b := []byte(qr)
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: string(b)})
	wantCode(t, err, softatm.ECodeInvalid)
	_, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: "HTTPS://EVIL.EXAMPLE/PAY"})
	wantCode(t, err, softatm.ECodeInvalid)
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateReserved {
		t.Fatalf("state %s after bad scans", s)
	}
}

func TestTillShortRefusedAtScan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 500_000) // LS-003 holds only 100,000
	_, err := e.svc.Scan(ctx, teller3, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ETillShort)
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateReserved {
		t.Fatalf("state %s, want reserved", s)
	}
}

func TestNumericFallbackAndLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: "0000"})
	wantCode(t, err, softatm.ECodeInvalid)
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich})
	if err != nil || w.ID != is.Withdrawal.ID {
		t.Fatalf("numeric scan: %v", err)
	}
	// Guessing locks the kiosk out.
	for i := 0; i < e.cfg.NumericFailMax; i++ {
		_, _ = e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{Numeric: "123456789012", PhoneLast4: "1111"})
	}
	_, err = e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich})
	wantCode(t, err, softatm.ELocked)
}

// TestOneCodeManyTellers is the heart of "nobody takes cash that is not
// theirs": many tellers scan and confirm one code at once, many times;
// exactly one payout each time.
func TestOneCodeManyTellers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// 200 rounds of 50,000 empty the 10,000,000 till exactly: in the last
	// round a scan that read the code before the winner paid and the till
	// after must still be told the code was used, not that the till is short.
	const tellers, rounds = 64, 200
	for round := range rounds {
		is := e.issue(t, acctRich, 50_000)
		var wg sync.WaitGroup
		var mu sync.Mutex
		paid := 0
		codes := map[string]int{}
		for i := range tellers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tl := atmswitch.Teller{UserID: uuid.NewString(), Username: "t", PostOffice: "LS-001", Kiosk: "KLS00101"}
				if i%2 == 1 {
					tl.Kiosk = "KLS00102"
				}
				_, err := e.svc.Scan(ctx, tl, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
				if err == nil {
					_, err = e.svc.Confirm(ctx, tl, is.Withdrawal.ID)
				}
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					paid++
				} else {
					codes[softatm.ErrorCode(err)]++
				}
			}()
		}
		wg.Wait()
		if paid != 1 {
			t.Fatalf("round %d: %d payouts, want 1 (refusals %v)", round, paid, codes)
		}
		for c := range codes {
			if c != softatm.ECodeUsed && c != softatm.ECodeClaimed {
				t.Fatalf("round %d: unexpected refusal %q (%v)", round, c, codes)
			}
		}
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT COUNT(*) FROM transfers WHERE kind = 'post_pending'`).Scan(&n); err != nil || n != rounds {
		t.Fatalf("posted transfers %d, want %d (%v)", n, rounds, err)
	}
	e.checkLedger(t)
}

// TestRedisFlushedStillPaysOnce: with Redis flushed between scans, the
// database alone refuses the second payout.
func TestRedisFlushedStillPaysOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	// Forget everything the fast gate knew (only this test's keys).
	iter := e.redis.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		e.redis.Del(ctx, iter.Val())
	}
	_, err := e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeUsed)
	_, err = e.svc.Confirm(ctx, teller2, is.Withdrawal.ID)
	wantCode(t, err, softatm.ECodeUsed)
}

func TestNoReplyIsReversed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.AuthTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	e.sim.SetFault(acctRich, banksim.Fault{Kind: "drop"})
	_, err := e.svc.Create(ctx, "MB", atmswitch.CreateRequest{Account: acctRich, Amount: 100_000, PhoneLast4: "1234"})
	wantCode(t, err, softatm.EBankUnavailable)
	e.sim.ClearFaults()
	e.drain(t)
	if n := e.sim.Received("0420"); n != 1 {
		t.Fatalf("reversals %d, want 1", n)
	}
	for _, h := range e.sim.Holds() {
		if h.State == "held" {
			t.Fatalf("hold %s still open after reversal", h.ApprovalCode)
		}
	}
	var state string
	if err := e.pool.QueryRow(ctx, `SELECT state FROM withdrawals`).Scan(&state); err != nil || state != "failed" {
		t.Fatalf("state %q (%v), want failed", state, err)
	}
}

func TestExpirySweepReversesHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.CodeTTL = time.Second; c.ClockSkew = 0 })
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	time.Sleep(2100 * time.Millisecond) // codes carry whole seconds
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeExpired)
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateExpired {
		t.Fatalf("state %s, want expired", s)
	}
	e.drain(t)
	if a, _ := e.sim.Account(acctRich); a.Held != 0 {
		t.Fatalf("bank still holds %d", a.Held)
	}
	e.checkLedger(t)
}

func (e *env) dumpOutbox(t *testing.T) {
	rows, _ := e.pool.Query(context.Background(), `SELECT kind, state, attempts, last_error, response_code FROM outbox`)
	for rows.Next() {
		var k, s, le, rc string
		var a int
		rows.Scan(&k, &s, &a, &le, &rc)
		t.Logf("outbox %s %s %d %q %q", k, s, a, le, rc)
	}
}

func TestPostOfficeDailyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE post_offices SET daily_limit = 600000 WHERE code = 'LS-001'`); err != nil {
		t.Fatal(err)
	}
	first := e.issue(t, acctRich, 500_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: first.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, first.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	second := e.issue(t, acctRich, 200_000)
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: second.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ELimit)
	if s := e.state(t, second.Withdrawal.ID); s != atmswitch.StateReserved {
		t.Fatalf("state %s, want reserved", s)
	}
}

// TestAdviceRepeatedThenException: while the bank ignores 0220s the advice
// is repeated as 0221; after MaxAttempts it becomes an exception that
// finance sees, and requeued once the bank is back it completes.
func TestAdviceRepeatedThenException(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.AuthTimeout = time.Second })
	ctx := context.Background()
	ocfg := atmswitch.DefaultOutboxConfig()
	ocfg.MaxAttempts, ocfg.BackoffMin, ocfg.BackoffMax, ocfg.SendTimeout = 3, time.Millisecond, 5*time.Millisecond, 200*time.Millisecond
	e.outbox = atmswitch.NewOutbox(ocfg, e.pool, e.ledger, e.bank, quietLog(), e.m, nil)
	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	e.sim.SetMTIFault("0220", banksim.Fault{Kind: "drop"})
	e.sim.SetMTIFault("0221", banksim.Fault{Kind: "drop"})
	e.drain(t)
	if a, r := e.sim.Received("0220"), e.sim.Received("0221"); a != 1 || r != 2 {
		t.Fatalf("bank got %d 0220 and %d 0221, want 1 and 2", a, r)
	}
	ex, err := e.svc.Exceptions(ctx)
	if err != nil || len(ex) != 1 || ex[0].Kind != "advice" || ex[0].WithdrawalID != is.Withdrawal.ID {
		t.Fatalf("exceptions %+v (%v)", ex, err)
	}
	if n := e.m.OutboxExceptions("advice"); n != 1 {
		t.Fatalf("softatm_outbox_exceptions_total{kind=advice} = %v, want 1", n)
	}
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StatePaid {
		t.Fatalf("state %s, want paid until the bank answers", s)
	}
	// The dropped messages were still captured at the bank (the fault drops
	// only the reply), so the repeat after requeue is answered idempotently.
	e.sim.ClearFaults()
	if err := e.svc.Requeue(ctx, ex[0].ID); err != nil {
		t.Fatal(err)
	}
	e.drain(t)
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateCompleted {
		t.Fatalf("state %s, want completed", s)
	}
	if n := e.m.OutboxExceptions("advice"); n != 1 {
		t.Fatalf("after the requeued advice was answered: softatm_outbox_exceptions_total{kind=advice} = %v, want still 1", n)
	}
	if err := e.svc.ResolveException(ctx, ex[0].ID, "finance", ""); softatm.ErrorCode(err) != softatm.EInvalid {
		t.Fatalf("resolve without a reason: %v", err)
	}
	e.checkLedger(t)
}

// TestRefusedAdviceIsCountedException: a 0220 the bank refuses (05)
// becomes an exception at once and is counted in
// softatm_outbox_exceptions_total{kind="advice"} exactly once, however
// often the worker drains.
func TestRefusedAdviceIsCountedException(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	e.sim.SetFault(acctRich, banksim.Fault{Kind: banksim.FaultAdviceRefuse, ResponseCode: "05"})
	e.drain(t)
	e.drain(t)
	ex, err := e.svc.Exceptions(ctx)
	if err != nil || len(ex) != 1 || ex[0].Kind != "advice" || ex[0].ResponseCode != "05" {
		t.Fatalf("exceptions %+v (%v)", ex, err)
	}
	if a, r := e.m.OutboxExceptions("advice"), e.m.OutboxExceptions("reversal"); a != 1 || r != 0 {
		t.Fatalf("softatm_outbox_exceptions_total advice %v reversal %v, want 1 and 0", a, r)
	}
}

// TestNumericCodeCollisionRedrawn: a numeric code already held by another
// withdrawal is drawn again; the create succeeds with a fresh one and the
// bank's hold is not reversed.
func TestNumericCodeCollisionRedrawn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := mustNumeric(t), mustNumeric(t)
	draws := []string{a, a, b}
	var mu sync.Mutex
	atmswitch.SetNumericSource(e.svc, func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		n := draws[0]
		if len(draws) > 1 {
			draws = draws[1:]
		}
		return n, nil
	})
	first := e.issue(t, acctRich, 100_000)
	second := e.issue(t, acctRich, 100_000)
	if first.Numeric != a || second.Numeric != b {
		t.Fatalf("numeric codes %q and %q, want the second redrawn", first.Numeric, second.Numeric)
	}
	if st := e.state(t, second.Withdrawal.ID); st != atmswitch.StateReserved {
		t.Fatalf("second withdrawal is %s, want reserved", st)
	}
	ctx := context.Background()
	w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: second.Numeric, PhoneLast4: phoneRich})
	if err != nil || w.ID != second.Withdrawal.ID {
		t.Fatalf("scanning the redrawn numeric code: %v, %v", w.ID, err)
	}
}

func mustNumeric(t *testing.T) string {
	t.Helper()
	n, err := code.NewNumeric()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBankReplyMustMatchRequest: a bank that approves with another amount,
// RRN, account, currency or processing code has not approved this request.
// Nothing is reserved or paid, the 0420 goes out for whatever the bank
// holds, and finance sees both messages, the account masked.
func TestBankReplyMustMatchRequest(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{banksim.FaultReplyAmount, banksim.FaultReplyRRN, banksim.FaultReplyAccount,
		banksim.FaultReplyCurrency, banksim.FaultReplyProc} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			e.sim.SetFault(acctRich, banksim.Fault{Kind: fault})
			_, err := e.svc.Create(ctx, "MB", atmswitch.CreateRequest{Account: acctRich, Amount: 110_000, PhoneLast4: phoneRich})
			wantCode(t, err, softatm.EBankReplyInvalid)
			e.sim.ClearFaults()
			e.drain(t)
			var state string
			var approved int64
			if err := e.pool.QueryRow(ctx, `SELECT state, approved_amount FROM withdrawals`).Scan(&state, &approved); err != nil {
				t.Fatal(err)
			}
			if state != string(atmswitch.StateFailed) || approved != 0 {
				t.Fatalf("state %s approved %d, want failed and nothing approved", state, approved)
			}
			if n := e.sim.Received("0420"); n != 1 {
				t.Fatalf("reversals %d, want 1", n)
			}
			if a, _ := e.sim.Account(acctRich); a.Held != 0 {
				t.Fatalf("bank still holds %d after the reversal", a.Held)
			}
			exc, err := e.svc.Exceptions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(exc) != 1 || exc[0].Kind != "reply_mismatch" || !strings.Contains(exc[0].LastError, "received:") ||
				strings.Contains(exc[0].LastError, acctRich) {
				t.Fatalf("exceptions %+v, want one reply_mismatch with both messages, account masked", exc)
			}
			if n := e.m.OutboxExceptions("reply_mismatch"); n != 1 {
				t.Fatalf("softatm_outbox_exceptions_total{kind=reply_mismatch} = %v, want 1", n)
			}
			if err := e.svc.Requeue(ctx, exc[0].ID); softatm.ErrorCode(err) != softatm.ENotFound {
				t.Fatalf("requeue of a mismatched reply: %v, want not found (it is not a message)", err)
			}
			e.checkLedger(t)
			var pending int64
			if err := e.pool.QueryRow(ctx, `SELECT COUNT(*) FROM transfers WHERE withdrawal_id IS NOT NULL`).Scan(&pending); err != nil || pending != 0 {
				t.Fatalf("%d transfers (%v), want none", pending, err)
			}
		})
	}
}

// TestClientMovesOnlyItsBanksAccounts: MB's app asks for cash from an
// Agribank account, or from an account no bank owns: refused before any
// message leaves, nothing recorded.
func TestClientMovesOnlyItsBanksAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		bank, account string
	}{
		{"MB", acctLimit},          // AGR's range 970405
		{"AGR", acctRich},          // MB's range 970400
		{"MB", "9999000000000011"}, // nobody's
		{"VCB", acctRich},          // a bank with no ranges
	} {
		_, err := e.svc.Create(ctx, tc.bank, atmswitch.CreateRequest{Account: tc.account, Amount: 100_000, PhoneLast4: "1234"})
		wantCode(t, err, softatm.EAccountNotOfBank)
	}
	if n := e.sim.Received("0100"); n != 0 {
		t.Fatalf("%d 0100s sent for accounts of another bank", n)
	}
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT COUNT(*) FROM withdrawals`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d withdrawals recorded (%v), want none", rows, err)
	}
	// The longest prefix decides: a narrower range of AGR inside MB's.
	if _, err := e.pool.Exec(ctx, `UPDATE banks SET account_ranges = '{970405,97040000000000}' WHERE code = 'AGR'`); err != nil {
		t.Fatal(err)
	}
	// A switch started after the edit (a running one reads it within
	// seconds) sees it; refused before the codes are signed.
	fresh := atmswitch.NewService(e.cfg, atmswitch.Deps{Pool: e.pool, Ledger: e.ledger, Bank: e.bank, Log: quietLog()})
	_, err := fresh.Create(ctx, "MB", atmswitch.CreateRequest{Account: acctRich, Amount: 100_000, PhoneLast4: "1234"})
	wantCode(t, err, softatm.EAccountNotOfBank)
}

// kinds lists the outbox messages queued for a withdrawal, in order.
func (e *env) kinds(t *testing.T, id uuid.UUID) []string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT kind FROM outbox WHERE withdrawal_id = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

// The code's life, as chosen (lifecycle.go, CondClaimLive): a claim made
// before the code expired may be paid until the claim ends, and the
// sweeper never expires a claimed code, so the hold it pays is live. Once
// the claim ends, no confirm pays: the claim lapses, the code expires and
// its hold is released.
func TestClaimMadeInTimePaysUntilTheClaimEnds(t *testing.T) {
	t.Parallel()
	// Codes expire on whole seconds: a 2 s code lives 1 to 2 s.
	e := newEnv(t, func(c *atmswitch.Config) { c.CodeTTL, c.ClaimTTL, c.ClockSkew = 2*time.Second, 4*time.Second, 0 })
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // past the code's expiry (whole seconds), inside the claim
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateClaimed {
		t.Fatalf("the sweeper moved a live claim to %s", s)
	}
	if _, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err != nil {
		t.Fatalf("confirm inside the claim: %v", err)
	}
	e.drain(t)
	if k := e.kinds(t, is.Withdrawal.ID); !slices.Equal(k, []string{"advice"}) {
		t.Fatalf("messages %v, want the advice only", k)
	}
	e.checkLedger(t)
}

func TestNoPayoutAfterTheClaimEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.CodeTTL, c.ClaimTTL, c.ClockSkew = 2*time.Second, time.Second, 0 })
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // the claim and the code have both ended
	_, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID)
	wantCode(t, err, softatm.EConflict)
	for range 2 { // the claim lapses, then the code expires
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateExpired {
		t.Fatalf("state %s, want expired", s)
	}
	_, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	wantCode(t, err, softatm.ECodeExpired)
	e.drain(t)
	if a, _ := e.sim.Account(acctRich); a.Held != 0 || a.Balance != 50_000_000 {
		t.Fatalf("bank holds %d, balance %d: the hold was not released", a.Held, a.Balance)
	}
	e.checkLedger(t)
}

// TestConfirmRacesTheSweeperAtTheClaimsEnd: at the instant a claim ends,
// a confirm and the sweeper run together. Exactly one wins: paid with an
// advice, or lapsed and then expired with a reversal; never both.
func TestConfirmRacesTheSweeperAtTheClaimsEnd(t *testing.T) {
	t.Parallel()
	const claimTTL = 500 * time.Millisecond
	// The code outlives the claim (codes expire on whole seconds: a 3 s
	// code lives 2 to 3 s), so only the claim's end is raced.
	e := newEnv(t, func(c *atmswitch.Config) { c.CodeTTL, c.ClaimTTL, c.ClockSkew = 3*time.Second, claimTTL, 0 })
	ctx := context.Background()
	var paid, expired int
	for round := range 8 {
		is := e.issue(t, acctRich, 50_000)
		w, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
		if err != nil {
			t.Fatal(err)
		}
		// Around the claim's end, spread over rounds: a little before, at, after.
		time.Sleep(time.Until(w.ClaimUntil) + time.Duration(round%4-2)*2*time.Millisecond)
		var wg sync.WaitGroup
		var confirmErr error
		wg.Go(func() { _, confirmErr = e.svc.Confirm(ctx, teller1, is.Withdrawal.ID) })
		wg.Go(func() { _, _ = e.svc.Sweep(ctx) })
		wg.Wait()
		for e.state(t, is.Withdrawal.ID) == atmswitch.StateClaimed || e.state(t, is.Withdrawal.ID) == atmswitch.StateReserved {
			time.Sleep(100 * time.Millisecond)
			if _, err := e.svc.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
		}
		switch s, k := e.state(t, is.Withdrawal.ID), e.kinds(t, is.Withdrawal.ID); {
		case s == atmswitch.StatePaid && confirmErr == nil && slices.Equal(k, []string{"advice"}):
			paid++
		case s == atmswitch.StateExpired && confirmErr != nil && slices.Equal(k, []string{"reversal"}):
			expired++
		default:
			t.Fatalf("round %d: state %s, confirm %v, messages %v", round, s, confirmErr, k)
		}
	}
	t.Logf("%d paid, %d expired", paid, expired)
	e.drain(t)
	e.checkLedger(t)
}

// A create interrupted after its hold (the switch died between recording the
// approval and storing the idempotent answer) is retried with the same key:
// the same withdrawal comes back, with a numeric code drawn again (the first
// was shown to no one), and no second 0100 leaves.
func TestRetriedCreateContinuesFromItsWithdrawal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	req := atmswitch.CreateRequest{Account: acctRich, Amount: 100_000, PhoneLast4: phoneRich, Key: "mb-app/k1"}
	first, err := e.svc.Create(ctx, "MB", req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.Create(ctx, "MB", req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Withdrawal.ID != first.Withdrawal.ID || again.Numeric == "" || again.Numeric == first.Numeric {
		t.Fatalf("retry gave %s / %q, want %s with a new numeric code", again.Withdrawal.ID, again.Numeric, first.Withdrawal.ID)
	}
	if n := e.sim.Received("0100"); n != 1 {
		t.Fatalf("%d 0100s for one keyed create, want 1", n)
	}
	_, err = e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: first.Numeric, PhoneLast4: phoneRich})
	wantCode(t, err, softatm.ECodeInvalid)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: again.Numeric, PhoneLast4: phoneRich}); err != nil {
		t.Fatalf("the redrawn numeric code: %v", err)
	}
	// Another request under the same key is refused, whatever the limit says.
	other := req
	other.Amount = 200_000
	_, err = e.svc.Create(ctx, "MB", other)
	wantCode(t, err, softatm.EIdemReused)
	// Once claimed, a retry shows the state and no code.
	is, err := e.svc.Create(ctx, "MB", req)
	if err != nil || is.Withdrawal.State != atmswitch.StateClaimed || is.Numeric != "" {
		t.Fatalf("retry of a claimed code: %+v %v", is, err)
	}
}

// The first attempt died while its request was in flight (its row is
// 'requested', the 0100 may have reached the bank): the retry fails it,
// queues its 0420, and asks again under the same key.
func TestRetriedCreateReversesAnOrphanedRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	orphan := uuid.New()
	if _, err := e.pool.Exec(ctx, `INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state,
			terminal_id, stan, rrn, transmitted_at, client_key)
		VALUES ($1, 'MB', $2, 100000, '704', 'requested', 'SATM0001', '000001', '633100000001', now(), 'mb-app/k2')`,
		orphan, acctRich); err != nil {
		t.Fatal(err)
	}
	is, err := e.svc.Create(ctx, "MB", atmswitch.CreateRequest{Account: acctRich, Amount: 100_000, PhoneLast4: phoneRich, Key: "mb-app/k2"})
	if err != nil {
		t.Fatal(err)
	}
	if is.Withdrawal.ID == orphan || is.Withdrawal.State != atmswitch.StateReserved {
		t.Fatalf("retry answered %s in %s", is.Withdrawal.ID, is.Withdrawal.State)
	}
	if s := e.state(t, orphan); s != atmswitch.StateFailed {
		t.Fatalf("orphan %s, want failed", s)
	}
	if k := e.kinds(t, orphan); !slices.Equal(k, []string{"reversal"}) {
		t.Fatalf("orphan's messages %v, want its reversal", k)
	}
	e.drain(t)
	e.checkLedger(t)
}

// TestCodeSealedAtRest: the signed code pays at a kiosk, so the table
// keeps it sealed; the bank's app and the kiosk still get it.
func TestCodeSealedAtRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	var stored string
	if err := e.pool.QueryRow(ctx, `SELECT qr_payload FROM withdrawals WHERE id = $1`, is.Withdrawal.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored == is.Withdrawal.QRPayload || strings.Contains(stored, is.Withdrawal.QRPayload[:20]) {
		t.Fatalf("qr_payload readable in the table: %q", stored)
	}
	got, err := e.svc.Get(ctx, "MB", is.Withdrawal.ID)
	if err != nil || got.QRPayload != is.Withdrawal.QRPayload {
		t.Fatalf("the bank's app reads %q (%v), want the code", got.QRPayload, err)
	}
	// A sealed payload copied onto another row does not open there.
	other := e.issue(t, acctRich, 50_000)
	if _, err := e.pool.Exec(ctx, `UPDATE withdrawals SET qr_payload = $1 WHERE id = $2`, stored, other.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(ctx, "MB", other.Withdrawal.ID); err == nil {
		t.Fatal("a payload sealed for another withdrawal opened")
	}
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
}

// TestPayoutRefusesAnUnapprovedAmount: a payout posts the amount the bank
// approved; a row whose approved amount is not its amount (which the
// reply check makes impossible, so this is a broken invariant) pays
// nothing.
func TestPayoutRefusesAnUnapprovedAmount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE withdrawals SET approved_amount = 50000 WHERE id = $1`, is.Withdrawal.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err == nil {
		t.Fatal("paid an amount the bank did not approve")
	}
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateClaimed {
		t.Fatalf("state %s, want still claimed", s)
	}
}

// TestRetriedCreateAtTheDailyLimit: the first attempt's own hold fills the
// account's daily maximum; its retry is answered from its withdrawal, not
// refused for the limit it itself used up.
func TestRetriedCreateAtTheDailyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *atmswitch.Config) { c.AccountDailyMax = 100_000 })
	ctx := context.Background()
	req := atmswitch.CreateRequest{Account: acctRich, Amount: 100_000, PhoneLast4: phoneRich, Key: "mb-app/k3"}
	first, err := e.svc.Create(ctx, "MB", req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.Create(ctx, "MB", req)
	if err != nil || again.Withdrawal.ID != first.Withdrawal.ID {
		t.Fatalf("retry at the limit: %s, %v; want %s", again.Withdrawal.ID, err, first.Withdrawal.ID)
	}
	other := req
	other.Key = "mb-app/k4"
	_, err = e.svc.Create(ctx, "MB", other)
	wantCode(t, err, softatm.ELimit)
	if n := e.sim.Received("0100"); n != 1 {
		t.Fatalf("%d 0100s, want 1", n)
	}
}
