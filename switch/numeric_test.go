package atmswitch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/replay"
)

const codeNumericBlocked = softatm.ENumericBlocked

// parallelScans runs one numeric scan per teller at once and returns the
// error codes of the answers, counted ("" for a successful scan).
func parallelScans(e *env, tellers []atmswitch.Teller, req func(i int) atmswitch.ScanRequest) map[string]int {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
		codes = map[string]int{}
	)
	for i, tl := range tellers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := e.svc.Scan(context.Background(), tl, req(i))
			mu.Lock()
			codes[softatm.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return codes
}

// unknownNumeric returns a well-formed numeric code (right check digit)
// that no withdrawal has.
func unknownNumeric(t *testing.T) string {
	t.Helper()
	n, err := code.NewNumeric()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// metricValue returns the value of the counter name (with label=value, if
// label is not empty) in e's registry; 0 if it has no such series.
func metricValue(t *testing.T, e *env, name, label, value string) float64 {
	t.Helper()
	families, err := e.m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// tellerAt returns a teller of their own at a kiosk of their own at post
// office po.
func tellerAt(po string, i int) atmswitch.Teller {
	return atmswitch.Teller{UserID: uuid.NewString(), Username: fmt.Sprintf("t%d", i), PostOffice: po, Kiosk: fmt.Sprintf("K%s%03d", po, i)}
}

// TestNumericParallelGuessesCappedAtOnce: 30 wrong guesses sent at once by
// one teller at one kiosk. A guess that is evaluated is answered
// code_invalid; one refused by a cap, locked_out. At most the cap may be
// evaluated: counting and checking must be one step (before, 10 of 30 were).
func TestNumericParallelGuessesCappedAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	guesses := make([]atmswitch.Teller, 30)
	wrong := make([]string, len(guesses))
	for i := range guesses {
		guesses[i] = teller1
		wrong[i] = unknownNumeric(t)
	}
	codes := parallelScans(e, guesses, func(i int) atmswitch.ScanRequest {
		return atmswitch.ScanRequest{Numeric: wrong[i], PhoneLast4: "1234"}
	})
	if n := codes[softatm.ECodeInvalid]; n > e.cfg.NumericFailMax || n == 0 {
		t.Fatalf("%d of 30 parallel wrong guesses were evaluated, want 1..%d (answers %v)", n, e.cfg.NumericFailMax, codes)
	}
	if codes[softatm.ECodeInvalid]+codes[softatm.ELocked] != len(guesses) {
		t.Fatalf("answers %v, want only %s and %s", codes, softatm.ECodeInvalid, softatm.ELocked)
	}
	if got := metricValue(t, e, "softatm_numeric_failures_total", "reason", "unknown_code"); got != float64(codes[softatm.ECodeInvalid]) {
		t.Errorf("softatm_numeric_failures_total{reason=unknown_code} = %v, want %d", got, codes[softatm.ECodeInvalid])
	}
	if got := metricValue(t, e, "softatm_numeric_refusals_total", "scope", "kiosk"); got != float64(codes[softatm.ELocked]) {
		t.Errorf("softatm_numeric_refusals_total{scope=kiosk} = %v, want %d", got, codes[softatm.ELocked])
	}
}

// TestNumericCodeBlockedAfterWrongPhones: wrong phone digits for one code,
// typed at counters of different post offices (so that no counter's cap is
// reached), block the code for numeric entry, even with the right digits
// afterwards; the QR still pays, and the bank's app sees why.
func TestNumericCodeBlockedAfterWrongPhones(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	codeMax := e.cfg.NumericCodeFailMax
	for i := range codeMax {
		_, err := e.svc.Scan(ctx, tellerAt(fmt.Sprintf("PO-%d", i), i), atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: fmt.Sprintf("%04d", i)})
		if i < codeMax-1 {
			wantCode(t, err, softatm.ECodeInvalid)
		} else {
			wantCode(t, err, codeNumericBlocked) // the last wrong try says the code is now blocked
		}
	}
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich})
	wantCode(t, err, codeNumericBlocked)
	if s := e.state(t, is.Withdrawal.ID); s != atmswitch.StateReserved {
		t.Fatalf("state %s after a blocked numeric entry, want reserved", s)
	}
	// The block is on the code's row: a Redis flush does not lift it.
	keys, err := e.redis.Keys(ctx, e.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := e.redis.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich})
	wantCode(t, err, codeNumericBlocked)

	// Counted for the alert that replaced the switch-wide lockout.
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"softatm_numeric_failures_total", "reason", "wrong_phone", float64(codeMax)},
		{"softatm_numeric_codes_blocked_total", "", "", 1},
		{"softatm_numeric_refusals_total", "scope", "code", 2},
		{"softatm_numeric_refusals_total", "scope", "kiosk", 0},
	} {
		if got := metricValue(t, e, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}

	// The bank's app sees why.
	w, err := e.svc.Get(ctx, "MB", is.Withdrawal.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(atmswitch.View(w))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"numeric_blocked":true`) {
		t.Errorf("the app's view %s does not say the code is blocked for numeric entry", body)
	}

	// The QR code still works, at the counter that was refused.
	got, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{QR: is.Withdrawal.QRPayload})
	if err != nil || got.ID != is.Withdrawal.ID {
		t.Fatalf("QR scan of a numerically blocked code: %v", err)
	}
	if _, err := e.svc.Confirm(ctx, teller1, is.Withdrawal.ID); err != nil {
		t.Fatalf("confirm after the QR scan: %v", err)
	}
}

// TestNumericCodeViewNotBlocked: a fresh code shows numeric_blocked false,
// and one wrong phone try does not block it.
func TestNumericCodeViewNotBlocked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: "0000"})
	wantCode(t, err, softatm.ECodeInvalid)
	w, err := e.svc.Get(ctx, "MB", is.Withdrawal.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(atmswitch.View(w))
	if !strings.Contains(string(body), `"numeric_blocked":false`) {
		t.Errorf("view %s, want numeric_blocked false", body)
	}
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich}); err != nil {
		t.Fatalf("right digits after one wrong try: %v", err)
	}
}

// TestNumericCodeBlockParallel: 30 wrong phone tries at one code at once,
// each from a counter of its own: at most the code's cap are evaluated.
func TestNumericCodeBlockParallel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.issue(t, acctRich, 100_000)
	tellers := make([]atmswitch.Teller, 30)
	for i := range tellers {
		tellers[i] = tellerAt(fmt.Sprintf("PO-%d", i), i)
	}
	codes := parallelScans(e, tellers, func(i int) atmswitch.ScanRequest {
		return atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: fmt.Sprintf("%04d", 9000+i)}
	})
	codeMax := e.cfg.NumericCodeFailMax
	// The try that blocks the code is evaluated too: it answers blocked.
	if n := codes[softatm.ECodeInvalid]; n >= codeMax {
		t.Fatalf("%d wrong phone tries answered as evaluated, want < %d (answers %v)", n, codeMax, codes)
	}
	if codes[softatm.ECodeInvalid]+codes[codeNumericBlocked] != len(tellers) {
		t.Fatalf("answers %v, want only %s and %s", codes, softatm.ECodeInvalid, codeNumericBlocked)
	}
	var failures int
	if err := e.pool.QueryRow(context.Background(), `SELECT numeric_failures FROM withdrawals WHERE id = $1`,
		is.Withdrawal.ID).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if failures != codeMax {
		t.Fatalf("the code counted %d wrong phone tries, want exactly %d", failures, codeMax)
	}
}

// TestNumericNoSwitchWideLockout: 200 wrong guesses from 40 tellers at 8
// post offices (5 each, every counter locked) do not lock out a teller at
// another post office. Before, the 200th wrong guess locked every counter
// of the switch for 15 minutes.
func TestNumericNoSwitchWideLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 50_000) // LS-003's till holds 100,000
	var guessers []atmswitch.Teller
	for i := range 40 {
		guessers = append(guessers, tellerAt(fmt.Sprintf("PO-%d", i%8), i))
	}
	var wg sync.WaitGroup
	for _, tl := range guessers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range e.cfg.NumericFailMax {
				_, err := e.svc.Scan(ctx, tl, atmswitch.ScanRequest{Numeric: unknownNumeric(t), PhoneLast4: "1234"})
				if c := softatm.ErrorCode(err); c != softatm.ECodeInvalid && c != softatm.ELocked {
					t.Errorf("wrong guess answered %v", err)
				}
			}
		}()
	}
	wg.Wait()
	// The guessers are locked out...
	_, err := e.svc.Scan(ctx, guessers[0], atmswitch.ScanRequest{Numeric: unknownNumeric(t), PhoneLast4: "1234"})
	wantCode(t, err, softatm.ELocked)
	// ...but a teller at another post office still types a code.
	if _, err := e.svc.Scan(ctx, teller3, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich}); err != nil {
		t.Fatalf("a teller at another post office after 200 wrong guesses elsewhere: %v", err)
	}
	// And so does one at a counter of LS-001, where nobody guessed.
	is2 := e.issue(t, acctRich, 50_000)
	if _, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is2.Numeric, PhoneLast4: phoneRich}); err != nil {
		t.Fatalf("teller1 after 200 wrong guesses at other post offices: %v", err)
	}
}

// TestNumericOneTellerDoesNotLockAnotherPostOffice: teller1 locks
// themselves out; teller3, at another post office, is not affected.
func TestNumericOneTellerDoesNotLockAnotherPostOffice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 50_000) // LS-003's till holds 100,000
	for range e.cfg.NumericFailMax {
		_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: unknownNumeric(t), PhoneLast4: "1234"})
		wantCode(t, err, softatm.ECodeInvalid)
	}
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich})
	wantCode(t, err, softatm.ELocked)
	if _, err := e.svc.Scan(ctx, teller3, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich}); err != nil {
		t.Fatalf("teller3 at LS-003 after teller1's guesses at LS-001: %v", err)
	}
}

// TestNumericPostOfficeCap: wrong guesses spread over the counters of one
// post office, each counter below its own cap, lock that post office out
// once they reach its cap; other post offices go on.
func TestNumericPostOfficeCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	poMax := e.cfg.NumericPostOfficeFailMax
	is := e.issue(t, acctRich, 50_000)
	// poMax tellers at counters of their own at PO-X, one wrong guess each.
	for i := range poMax {
		_, err := e.svc.Scan(ctx, tellerAt("PO-X", i), atmswitch.ScanRequest{Numeric: unknownNumeric(t), PhoneLast4: "1234"})
		wantCode(t, err, softatm.ECodeInvalid)
	}
	// A new counter at PO-X, which has guessed nothing itself, is refused.
	_, err := e.svc.Scan(ctx, tellerAt("PO-X", poMax), atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich})
	wantCode(t, err, softatm.ELocked)
	// Another post office is not.
	if _, err := e.svc.Scan(ctx, teller3, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich}); err != nil {
		t.Fatalf("teller3 at LS-003: %v", err)
	}
}

// TestNumericTriesLeftInMessage: a wrong guess tells the teller how many
// tries the counter has left, in the message (the error shape has no other
// field); the kiosk page reads it from there (kiosk.js triesLeft).
func TestNumericTriesLeftInMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for i := 1; i <= e.cfg.NumericFailMax; i++ {
		_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: unknownNumeric(t), PhoneLast4: "1234"})
		wantCode(t, err, softatm.ECodeInvalid)
		want := fmt.Sprintf("(tries left: %d)", e.cfg.NumericFailMax-i)
		if msg := softatm.ErrorMessage(err); !strings.HasSuffix(msg, want) {
			t.Errorf("wrong guess %d: message %q, want it to end with %q", i, msg, want)
		}
	}
	_, err := e.svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: unknownNumeric(t), PhoneLast4: "1234"})
	wantCode(t, err, softatm.ELocked)
	if msg := softatm.ErrorMessage(err); !strings.HasSuffix(msg, "(tries left: 0)") {
		t.Errorf("locked out: message %q, want it to end with %q", msg, "(tries left: 0)")
	}
	// A right code gives its try back: the count does not go down.
	is := e.issue(t, acctRich, 100_000)
	if _, err := e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: phoneRich}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Scan(ctx, teller2, atmswitch.ScanRequest{Numeric: unknownNumeric(t), PhoneLast4: "1234"})
	if msg := softatm.ErrorMessage(err); !strings.HasSuffix(msg, fmt.Sprintf("(tries left: %d)", e.cfg.NumericFailMax-1)) {
		t.Errorf("first wrong guess after a right one: message %q", msg)
	}
}

// TestNumericRefusedWithoutRedis: with Redis unreachable the counters'
// caps cannot be kept, so numeric entry is refused as unavailable, before
// anything is evaluated or counted on the code.
func TestNumericRefusedWithoutRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	down, err := replay.NewClient("redis://127.0.0.1:1/0") // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down.Close() })
	svc := atmswitch.NewService(e.cfg, atmswitch.Deps{Pool: e.pool, Ledger: e.ledger, Bank: e.bank,
		Gate: replay.New(down, e.prefix), Log: quietLog()})
	for _, last4 := range []string{"0000", phoneRich} {
		_, err := svc.Scan(ctx, teller1, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: last4})
		wantCode(t, err, softatm.EUnavailable)
	}
	var failures int
	if err := e.pool.QueryRow(ctx, `SELECT numeric_failures FROM withdrawals WHERE id = $1`, is.Withdrawal.ID).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if failures != 0 {
		t.Fatalf("numeric_failures %d after entries refused for want of Redis, want 0", failures)
	}
}

// TestNumericNeedsTellerKioskAndPostOffice: a teller without a kiosk or a
// post office would share one counter with every other such teller; such
// an entry is refused before anything is counted.
func TestNumericNeedsTellerKioskAndPostOffice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	is := e.issue(t, acctRich, 100_000)
	for name, tl := range map[string]atmswitch.Teller{
		"no kiosk":       {UserID: "u9", Username: "t9", PostOffice: "LS-001"},
		"no post office": {UserID: "u9", Username: "t9", Kiosk: "KLS00101"},
		"no user":        {Username: "t9", PostOffice: "LS-001", Kiosk: "KLS00101"},
	} {
		_, err := e.svc.Scan(ctx, tl, atmswitch.ScanRequest{Numeric: is.Numeric, PhoneLast4: "0000"})
		if got := softatm.ErrorCode(err); got != softatm.EForbidden {
			t.Errorf("%s: %v, want %s", name, err, softatm.EForbidden)
		}
	}
	if n := metricValue(t, e, "softatm_numeric_failures_total", "reason", "wrong_phone"); n != 0 {
		t.Errorf("%v wrong phone entries counted, want 0", n)
	}
}
