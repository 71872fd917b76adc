package idem_test

// Tests that each kill a mutation of one guard (issue 20; the list is
// scripts/mutate/guards.txt). Each was seen to fail with its guard changed.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/softatm/softatm/switch/idem"
)

// TestLateFinisherDoesNotOverwriteTakeover: a request presumed dead (its
// lease passed, another took the key over) finishes while the one that took
// over is still running. Its answer must not be stored: only the lease
// holder's is, and that is what a retry replays.
func TestLateFinisherDoesNotOverwriteTakeover(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	l, _ := mustCommitter(t)
	store := idem.New(l, idem.WithClock(clk.Now), idem.WithLease(10*time.Second))
	var runs atomic.Int64
	entered := make(chan int64, 4)
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		entered <- n
		if n <= int64(len(release)) {
			<-release[n-1]
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"run":%d}`, n)
	})
	scope := func(r *http.Request) (string, bool) { return "bankA", true }
	h := &harness{srv: httptest.NewServer(store.Middleware(scope)(handler))}
	t.Cleanup(h.srv.Close)

	first := make(chan reply, 1)
	go func() { first <- h.do(t, "bankA", "k", "/v1/withdrawals", `{}`) }()
	<-entered
	clk.Add(11 * time.Second) // the first is presumed dead
	second := make(chan reply, 1)
	go func() { second <- h.do(t, "bankA", "k", "/v1/withdrawals", `{}`) }()
	<-entered
	close(release[0]) // the "dead" one finishes while the second runs
	r1 := <-first
	close(release[1])
	r2 := <-second
	if r2.status != http.StatusCreated || r2.body == r1.body {
		t.Fatalf("first %+v, second %+v", r1, r2)
	}
	r3 := h.do(t, "bankA", "k", "/v1/withdrawals", `{}`)
	if r3.replayed != "true" || r3.body != r2.body {
		t.Fatalf("replay %+v, want the lease holder's answer %q (the late one was %q)", r3, r2.body, r1.body)
	}
}
