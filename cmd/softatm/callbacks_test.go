package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	atmswitch "github.com/softatm/softatm/switch"
)

// TestBankAppCallbacks: a callback URL registered with `softatm admin
// client -callback-url -callback-secret` is told of every state change of
// the withdrawals its client creates through the API, signed.
func TestBankAppCallbacks(t *testing.T) {
	t.Parallel()
	const secret = "mb-callback-secret-e2e"
	var (
		mu     sync.Mutex
		types  []string
		badSig int
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev atmswitch.CallbackEvent
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		if !atmswitch.VerifyCallback([]byte(secret), r.Header.Get(atmswitch.HeaderCallbackTimestamp), body,
			r.Header.Get(atmswitch.HeaderCallbackSignature)) {
			badSig++
		}
		types = append(types, ev.Type)
	}))
	t.Cleanup(rcv.Close)

	s := startSystem(t, func(c *ServeConfig) { c.Callbacks.Poll = 20 * time.Millisecond })
	ctx := context.Background()
	b := s.Demo.Banks[0]
	if err := runAdmin(ctx, []string{"client", "-database", s.Main.Config.DatabaseURL, "-switch-secret", testSwitchSecret,
		"-id", b.ClientID, "-bank", b.Code, "-secret", b.ClientSecret, "-callback-url", rcv.URL, "-callback-secret", secret}); err != nil {
		t.Fatal(err)
	}
	if err := runAdmin(ctx, []string{"client", "-database", s.Main.Config.DatabaseURL, "-switch-secret", testSwitchSecret,
		"-id", b.ClientID, "-bank", b.Code, "-secret", b.ClientSecret, "-callback-url", "ftp://x", "-callback-secret", secret}); err == nil {
		t.Fatal("an ftp callback URL was accepted")
	}
	v := s.createWithdrawal(t, s.Demo.Accounts[0].Number, 500_000)
	if status, raw := s.call(t, nil, "POST", "/v1/withdrawals/"+v.ID.String()+"/cancel", s.bankHeaders(""), nil, nil); status != http.StatusOK {
		t.Fatalf("cancel: %d %s", status, raw)
	}
	want := []string{"withdrawal.reserved", "withdrawal.cancelled", "withdrawal.reversed"}
	eventually(t, "the app is told reserved, cancelled, reversed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(types) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(types, want) || badSig != 0 {
		t.Fatalf("callbacks %v (%d bad signatures), want %v", types, badSig, want)
	}
}
