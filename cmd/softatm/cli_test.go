package main

import (
	"context"
	"errors"
	"testing"

	"github.com/softatm/softatm/ledger"
)

// TestOperatorCommands runs the operator's commands against a real
// database, twice where they promise to be idempotent.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := context.Background()
	db := s.Main.Config.DatabaseURL
	till := func() int64 {
		a, err := s.Main.Ledger.Account(ctx, ledger.TillCode("LS-002"))
		if err != nil {
			t.Fatal(err)
		}
		return a.DebitsPosted - a.CreditsPosted
	}
	before := till()
	for range 2 {
		if err := runAdmin(ctx, []string{"replenish", "-database", db, "-post-office", "LS-002", "-amount", "5000000", "-ref", "DLV-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := till(); got != before+5_000_000 {
		t.Fatalf("till %d after replenishing twice with one ref, want %d", got, before+5_000_000)
	}
	for _, args := range [][]string{
		{"keys", "list"},
		{"admin", "bank", "-code", "VCB", "-name", "Vietcombank"},
		{"admin", "post-office", "-code", "LS-009", "-name", "Loc Binh", "-opening-cash", "1000000"},
		{"admin", "post-office", "-code", "LS-009", "-name", "Loc Binh", "-opening-cash", "1000000"},
		{"admin", "kiosk", "-id", "KLS00901", "-post-office", "LS-009"},
		{"admin", "user", "-username", "teller9", "-password", "teller9-pass", "-post-office", "LS-009", "-kiosk", "KLS00901"},
		{"recon", "settle", "-bank", "MB", "-amount", "100000"},
		{"recon", "settle", "-bank", "MB", "-amount", "100000"},
		{"recon", "settlement", "-csv"},
		{"admin", "check"},
	} {
		run := commands[args[0]]
		if err := run(ctx, append([]string{args[1], "-database", db}, args[2:]...)); err != nil {
			t.Fatalf("softatm %v: %v", args, err)
		}
	}
	a, err := s.Main.Ledger.Account(ctx, ledger.TillCode("LS-009"))
	if err != nil || a.DebitsPosted != 1_000_000 {
		t.Fatalf("LS-009 till %+v (%v), want 1000000 once", a, err)
	}
	var n int
	if err := s.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM transfers WHERE credit_account_id =
		(SELECT id FROM accounts WHERE code = 'bank:MB:receivable')`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("settlement transfers %d (%v), want 1", n, err)
	}
	if err := runAdmin(ctx, []string{"kiosk", "-database", db, "-id", "SHORT", "-post-office", "LS-009"}); err == nil {
		t.Fatal("a kiosk id of 5 characters was accepted")
	}
	// A reserved code the ledger holds nothing for: the ledger's own
	// checks cannot see it, the switch's (which admin check runs after
	// them) must.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO withdrawals (id, bank_code, account_number, amount, currency, state,
		terminal_id, stan, rrn, transmitted_at) VALUES (gen_random_uuid(), 'MB', '1', 5, '704', 'reserved', 'K', '000099',
		'RRN-NO-HOLD', now())`); err != nil {
		t.Fatal(err)
	}
	if err := runAdmin(ctx, []string{"check", "-database", db}); !errors.Is(err, errCheckFailed) {
		t.Fatalf("admin check on a reserved code without a hold: %v, want %v", err, errCheckFailed)
	}
}
