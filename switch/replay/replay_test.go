package replay_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/switch/replay"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

// mustGuard returns a Guard on the shared test Redis with a prefix of the
// test's own, and the raw client for looking at keys.
func mustGuard(t *testing.T) (*replay.Guard, *redis.Client, string) {
	t.Helper()
	url, prefix := localsrv.MustRedis(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return replay.New(c, prefix), c, prefix
}

// assertTTLs checks the rule that every key this package writes has a TTL.
func assertTTLs(t *testing.T, c *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		d, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d <= 0 {
			t.Errorf("key %s has PTTL %v, want > 0", k, d)
		}
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()

	ok, cur, err := g.Claim(ctx, "w1", "teller:A", time.Minute)
	if err != nil || !ok || cur != "teller:A" {
		t.Fatalf("first claim = %v %q %v, want true teller:A nil", ok, cur, err)
	}
	assertTTLs(t, c, prefix)

	ok, cur, err = g.Claim(ctx, "w1", "teller:B", time.Minute)
	if err != nil || ok || cur != "teller:A" {
		t.Fatalf("claim by other = %v %q %v, want false teller:A nil", ok, cur, err)
	}

	// The same holder refreshes its lease.
	if err := c.PExpire(ctx, prefix+"claim:w1", 500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	ok, _, err = g.Claim(ctx, "w1", "teller:A", time.Hour)
	if err != nil || !ok {
		t.Fatalf("reclaim = %v %v, want true", ok, err)
	}
	if d := c.PTTL(ctx, prefix+"claim:w1").Val(); d < 59*time.Minute {
		t.Errorf("PTTL after refresh = %v, want about an hour", d)
	}
	assertTTLs(t, c, prefix)

	// Release by someone else does nothing; by the holder frees the lease.
	if err := g.Release(ctx, "w1", "teller:B"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := g.Claim(ctx, "w1", "teller:B", time.Minute); ok {
		t.Fatal("teller:B claimed after a release by a non-holder")
	}
	if err := g.Release(ctx, "w1", "teller:A"); err != nil {
		t.Fatal(err)
	}
	ok, cur, err = g.Claim(ctx, "w1", "teller:B", time.Minute)
	if err != nil || !ok || cur != "teller:B" {
		t.Fatalf("claim after release = %v %q %v", ok, cur, err)
	}
	assertTTLs(t, c, prefix)
}

func TestClaimExpires(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	if ok, _, err := g.Claim(ctx, "w2", "A", 50*time.Millisecond); err != nil || !ok {
		t.Fatal(ok, err)
	}
	// Poll rather than sleep a fixed time: Redis expires keys on access.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, _, err := g.Claim(ctx, "w2", "B", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	assertTTLs(t, c, prefix)
}

func TestClaimRace(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	const racers = 64
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		winners []string
		holders = map[string]bool{}
	)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			me := fmt.Sprintf("teller:%d", i)
			ok, cur, err := g.Claim(ctx, "hot", me, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			holders[cur] = true
			if ok {
				winners = append(winners, me)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d winners %v, want exactly 1", len(winners), winners)
	}
	if len(holders) != 1 || !holders[winners[0]] {
		t.Fatalf("losers saw holders %v, want only %s", holders, winners[0])
	}
	assertTTLs(t, c, prefix)
}

func TestSpent(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	if s, err := g.Spent(ctx, "w3"); err != nil || s {
		t.Fatalf("Spent before = %v %v", s, err)
	}
	if err := g.MarkSpent(ctx, "w3", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if s, err := g.Spent(ctx, "w3"); err != nil || !s {
		t.Fatalf("Spent after = %v %v", s, err)
	}
	if d := c.PTTL(ctx, prefix+"spent:w3").Val(); d < time.Hour {
		t.Errorf("spent PTTL %v, want about 2h", d)
	}
	// A TTL computed from an expiry that has just passed still keeps the
	// marker for MinSpentTTL.
	if err := g.MarkSpent(ctx, "w4", -time.Second); err != nil {
		t.Fatal(err)
	}
	if d := c.PTTL(ctx, prefix+"spent:w4").Val(); d <= 0 || d > replay.MinSpentTTL {
		t.Errorf("spent PTTL %v, want in (0, %v]", d, replay.MinSpentTTL)
	}
	assertTTLs(t, c, prefix)
}

func TestAllow(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	tests := []struct {
		allowed   bool
		remaining int
	}{{true, 2}, {true, 1}, {true, 0}, {false, 0}, {false, 0}}
	for i, want := range tests {
		allowed, remaining, err := g.Allow(ctx, "numeric:kiosk:K1", 3, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if allowed != want.allowed || remaining != want.remaining {
			t.Errorf("call %d: Allow = %v %d, want %v %d", i+1, allowed, remaining, want.allowed, want.remaining)
		}
		assertTTLs(t, c, prefix)
	}
	// Another key has its own window.
	if allowed, remaining, err := g.Allow(ctx, "numeric:kiosk:K2", 3, time.Minute); err != nil || !allowed || remaining != 2 {
		t.Errorf("other key: %v %d %v", allowed, remaining, err)
	}
	// The window is fixed: later calls do not extend it.
	d1 := c.PTTL(ctx, prefix+"rl:numeric:kiosk:K1").Val()
	_, _, _ = g.Allow(ctx, "numeric:kiosk:K1", 3, time.Hour)
	if d2 := c.PTTL(ctx, prefix+"rl:numeric:kiosk:K1").Val(); d2 > d1 {
		t.Errorf("window extended from %v to %v", d1, d2)
	}
}

func TestAllowWindowEnds(t *testing.T) {
	t.Parallel()
	g, _, _ := mustGuard(t)
	ctx := context.Background()
	if ok, _, _ := g.Allow(ctx, "k", 1, 50*time.Millisecond); !ok {
		t.Fatal("first call refused")
	}
	if ok, _, _ := g.Allow(ctx, "k", 1, 50*time.Millisecond); ok {
		t.Fatal("second call allowed in the same window")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, _, err := g.Allow(ctx, "k", 1, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("window never ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	if n, err := g.Failures(ctx, "teller:T1"); err != nil || n != 0 {
		t.Fatalf("Failures before = %d %v", n, err)
	}
	for i := 1; i <= 3; i++ {
		n, err := g.Fail(ctx, "teller:T1", time.Minute)
		if err != nil || n != i {
			t.Fatalf("Fail #%d = %d %v", i, n, err)
		}
		assertTTLs(t, c, prefix)
	}
	if n, err := g.Failures(ctx, "teller:T1"); err != nil || n != 3 {
		t.Fatalf("Failures = %d %v, want 3", n, err)
	}
	// A counter found without a TTL (written by hand) gets one back.
	if err := c.Set(ctx, prefix+"fail:bare", "7", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := g.Fail(ctx, "bare", time.Minute); err != nil || n != 8 {
		t.Fatalf("Fail on bare = %d %v", n, err)
	}
	assertTTLs(t, c, prefix)
	if err := g.ResetFailures(ctx, "teller:T1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := g.Failures(ctx, "teller:T1"); n != 0 {
		t.Fatalf("Failures after reset = %d", n)
	}
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	g, _, _ := mustGuard(t)
	ctx := context.Background()
	checks := map[string]error{}
	_, _, checks["claim no id"] = g.Claim(ctx, "", "A", time.Minute)
	_, _, checks["claim no holder"] = g.Claim(ctx, "w", "", time.Minute)
	_, _, checks["claim zero ttl"] = g.Claim(ctx, "w", "A", 0)
	checks["release no holder"] = g.Release(ctx, "w", "")
	checks["mark spent no id"] = g.MarkSpent(ctx, "", time.Minute)
	_, checks["spent no id"] = g.Spent(ctx, "")
	_, _, checks["allow zero limit"] = g.Allow(ctx, "k", 0, time.Minute)
	_, _, checks["allow zero window"] = g.Allow(ctx, "k", 1, 0)
	_, checks["fail zero window"] = g.Fail(ctx, "k", 0)
	_, checks["failures no key"] = g.Failures(ctx, "")
	for name, err := range checks {
		if got := softatm.ErrorCode(err); got != softatm.EInvalid {
			t.Errorf("%s: code %q, want %q", name, got, softatm.EInvalid)
		}
	}
}

// TestRedisDown stops a private Redis, checks that every operation fails
// with EUnavailable (so the caller can fall back to the database), then
// restarts it empty on the same port and checks the Guard recovers.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	s := localsrv.MustPrivateRedis(t)
	c, err := replay.NewClient(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	g := replay.New(c, "softatm:")
	ctx := context.Background()

	if ok, _, err := g.Claim(ctx, "w", "A", time.Minute); err != nil || !ok {
		t.Fatal(ok, err)
	}
	s.Stop()

	ops := map[string]func() error{
		"Claim":     func() error { _, _, err := g.Claim(ctx, "w", "B", time.Minute); return err },
		"Release":   func() error { return g.Release(ctx, "w", "A") },
		"MarkSpent": func() error { return g.MarkSpent(ctx, "w", time.Minute) },
		"Spent":     func() error { _, err := g.Spent(ctx, "w"); return err },
		"Allow":     func() error { _, _, err := g.Allow(ctx, "k", 5, time.Minute); return err },
		"Fail":      func() error { _, err := g.Fail(ctx, "k", time.Minute); return err },
		"Failures":  func() error { _, err := g.Failures(ctx, "k"); return err },
		"TakeTry": func() error {
			_, err := g.TakeTry(ctx, []replay.Cap{{Key: "k", Limit: 5}}, time.Minute)
			return err
		},
		"GiveBackTry": func() error { return g.GiveBackTry(ctx, []replay.Cap{{Key: "k"}}) },
		"Ping":        func() error { return g.Ping(ctx) },
	}
	for name, op := range ops {
		err := op()
		if got := softatm.ErrorCode(err); got != softatm.EUnavailable {
			t.Errorf("%s with Redis down: %v (code %q), want %q", name, err, got, softatm.EUnavailable)
		}
		if msg := softatm.ErrorMessage(err); strings.Contains(msg, "127.0.0.1") {
			t.Errorf("%s: public message leaks the address: %q", name, msg)
		}
	}

	s2 := localsrv.RestartRedis(t, s)
	_ = s2
	deadline := time.Now().Add(10 * time.Second)
	for g.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Guard did not recover after Redis restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The restarted Redis is empty: the lease is gone, and only the
	// database (not tested here) still knows who holds the code.
	if ok, _, err := g.Claim(ctx, "w", "B", time.Minute); err != nil || !ok {
		t.Fatalf("claim after restart = %v %v", ok, err)
	}
}

// TestTakeTryParallel: 30 tries at once against a cap of 5: exactly 5 are
// taken, however they interleave. Checking and counting are one step.
func TestTakeTryParallel(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	caps := []replay.Cap{{Key: "numeric:kiosk:K1", Limit: 5}, {Key: "numeric:teller:T1", Limit: 5}, {Key: "numeric:po:P1", Limit: 20}}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
		taken int
		lefts = map[int]bool{}
	)
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tr, err := g.TakeTry(ctx, caps, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if tr.Taken {
				taken++
				lefts[tr.Left] = true
			} else if tr.Full != 0 || tr.Wait <= 0 || tr.Wait > time.Minute {
				t.Errorf("refused try: %+v, want the kiosk cap (0) full with a wait within the window", tr)
			}
		}()
	}
	close(start)
	wg.Wait()
	if taken != 5 {
		t.Fatalf("%d of 30 parallel tries taken, want exactly 5", taken)
	}
	for l := range 5 {
		if !lefts[l] {
			t.Errorf("no taken try was told %d left (told %v)", l, lefts)
		}
	}
	// A refused try counted nothing, not even against the caps that had room.
	if n, _ := g.Failures(ctx, "numeric:po:P1"); n != 5 {
		t.Errorf("post office counter %d, want 5", n)
	}
	assertTTLs(t, c, prefix)
}

// TestTakeTryAllOrNothing: a cap that is full refuses the try and counts
// it against no other cap; the first full cap is named.
func TestTakeTryAllOrNothing(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	kiosk := replay.Cap{Key: "kiosk", Limit: 3}
	teller := replay.Cap{Key: "teller", Limit: 1}
	tr, err := g.TakeTry(ctx, []replay.Cap{kiosk, teller}, time.Minute)
	if err != nil || !tr.Taken || tr.Left != 0 {
		t.Fatalf("first try = %+v %v, want taken with 0 left (the teller's cap is 1)", tr, err)
	}
	tr, err = g.TakeTry(ctx, []replay.Cap{kiosk, teller}, time.Minute)
	if err != nil || tr.Taken || tr.Full != 1 {
		t.Fatalf("second try = %+v %v, want refused by cap 1", tr, err)
	}
	if n, _ := g.Failures(ctx, "kiosk"); n != 1 {
		t.Fatalf("kiosk counter %d after a refused try, want 1", n)
	}
	// Another teller at the same kiosk still has tries.
	tr, err = g.TakeTry(ctx, []replay.Cap{kiosk, {Key: "teller2", Limit: 5}}, time.Minute)
	if err != nil || !tr.Taken || tr.Left != 1 {
		t.Fatalf("other teller = %+v %v, want taken with 1 left", tr, err)
	}
	assertTTLs(t, c, prefix)
}

// TestGiveBackTry: a right try is given back; giving back never goes below
// zero and never creates a counter (which would have no TTL).
func TestGiveBackTry(t *testing.T) {
	t.Parallel()
	g, c, prefix := mustGuard(t)
	ctx := context.Background()
	caps := []replay.Cap{{Key: "a", Limit: 2}, {Key: "b", Limit: 2}}
	for range 2 {
		if tr, err := g.TakeTry(ctx, caps, time.Minute); err != nil || !tr.Taken {
			t.Fatal(tr, err)
		}
	}
	if tr, _ := g.TakeTry(ctx, caps, time.Minute); tr.Taken {
		t.Fatal("third try taken against a cap of 2")
	}
	if err := g.GiveBackTry(ctx, caps); err != nil {
		t.Fatal(err)
	}
	if tr, err := g.TakeTry(ctx, caps, time.Minute); err != nil || !tr.Taken || tr.Left != 0 {
		t.Fatalf("try after a give-back = %+v %v, want taken with 0 left", tr, err)
	}
	// Counters that do not exist (their window ended) stay gone.
	if err := g.GiveBackTry(ctx, []replay.Cap{{Key: "gone"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, prefix+"fail:gone").Result(); err != nil || n != 0 {
		t.Fatalf("give back created a counter: %d %v", n, err)
	}
	if err := c.Set(ctx, prefix+"fail:zero", "0", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.GiveBackTry(ctx, []replay.Cap{{Key: "zero"}}); err != nil {
		t.Fatal(err)
	}
	if v := c.Get(ctx, prefix+"fail:zero").Val(); v != "0" {
		t.Fatalf("give back on 0 left %q", v)
	}
	assertTTLs(t, c, prefix)
}

func TestTakeTryBadArguments(t *testing.T) {
	t.Parallel()
	g, _, _ := mustGuard(t)
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["no caps"] = g.TakeTry(ctx, nil, time.Minute)
	_, checks["zero window"] = g.TakeTry(ctx, []replay.Cap{{Key: "k", Limit: 1}}, 0)
	_, checks["zero limit"] = g.TakeTry(ctx, []replay.Cap{{Key: "k", Limit: 0}}, time.Minute)
	_, checks["no key"] = g.TakeTry(ctx, []replay.Cap{{Limit: 1}}, time.Minute)
	checks["give back no caps"] = g.GiveBackTry(ctx, nil)
	checks["give back no key"] = g.GiveBackTry(ctx, []replay.Cap{{}})
	for name, err := range checks {
		if got := softatm.ErrorCode(err); got != softatm.EInvalid {
			t.Errorf("%s: code %q, want %q", name, got, softatm.EInvalid)
		}
	}
}
