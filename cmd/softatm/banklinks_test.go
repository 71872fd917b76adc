package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
)

// TestAdminBankLinkAndRangeOnRunningSwitch: `softatm admin bank` gives MB
// a link of its own and a new range while the switch runs; within seconds,
// without a restart, MB's withdrawals go to MB's own simulator (not the
// shared -bank one), an account in the new range is MB's, and the running
// switch logs both changes.
func TestAdminBankLinkAndRangeOnRunningSwitch(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	s := startSystemLogging(t, logs, func(c *ServeConfig) { c.LinksRefresh = 200 * time.Millisecond })
	ctx := context.Background()
	const moved = "9704770000000011"
	mb := banksim.New(append(demoAccounts(s.Demo), banksim.Account{Number: moved, Bank: "MB", Holder: "HOANG VAN KIEN", Balance: 10_000_000}),
		banksim.WithBank("MB"), banksim.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	addr, err := mb.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })

	create := func(account string) (int, string) {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		status, _ := s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{
			"account": account, "amount": 100_000, "currency": "VND", "holder_name": "Hoang Van Kien", "phone_last4": "5611",
		}, &e)
		return status, e.Error.Code
	}
	if status, code := create(moved); code != "account_not_of_client_bank" {
		t.Fatalf("an account in no range: %d %s", status, code)
	}
	b := s.Demo.Banks[0]
	if err := runAdmin(ctx, []string{"bank", "-database", s.Main.Config.DatabaseURL, "-code", b.Code, "-name", b.Name,
		"-ranges", "970400,970477", "-link", addr.String(), "-link-timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	shared := s.Sim.Received(iso.MTIAuthRequest)
	eventually(t, "MB's new range and own link in force", func() bool {
		status, _ := create(moved)
		return status == http.StatusCreated || status == http.StatusOK
	})
	if got := mb.Received(iso.MTIAuthRequest); got != 1 {
		t.Errorf("MB's own simulator got %d 0100s, want 1", got)
	}
	if got := s.Sim.Received(iso.MTIAuthRequest); got != shared {
		t.Errorf("the shared -bank simulator got %d more 0100s, want none", got-shared)
	}
	// The admin command writes the range and the link in two statements: a
	// refresh may see them together or one after the other.
	changed := map[string]bool{}
	for _, m := range regexp.MustCompile(`msg="bank changed" component=links bank=MB changed=(\S+)`).FindAllStringSubmatch(logs.String(), -1) {
		for _, what := range strings.Split(m[1], ",") {
			changed[what] = true
		}
	}
	if !changed["ranges"] || !changed["link"] {
		t.Errorf("the switch logged MB's changes as %v, want ranges and link", changed)
	}
	if !strings.Contains(logs.String(), `msg="bank link opened" component=links bank=MB`) {
		t.Error("the switch did not log MB's new link")
	}
	for _, bad := range [][]string{{"-link", "nowhere"}, {"-state", "closed"}, {"-link-timeout", "forever"}} {
		if err := runAdmin(ctx, append([]string{"bank", "-database", s.Main.Config.DatabaseURL, "-code", b.Code, "-name", b.Name}, bad...)); err == nil {
			t.Errorf("admin bank %v accepted", bad)
		}
	}
}
