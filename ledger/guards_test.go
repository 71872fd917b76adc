package ledger

// Ledger tests that each kill a mutation of one guard (issue 20; the list is
// scripts/mutate/guards.txt). Each was seen to fail with its guard changed.

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
)

// TestTillFlagToTheDong: a till holding 1,000,000 pays exactly 1,000,000
// and not one dong more; a pending credit (cash promised out) counts as
// gone.
func TestTillFlagToTheDong(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	till := TillCode("LS-001")
	if err := l.Replenish(ctx, "LS-001", 1_000_000, vnd, uuid.New()); err != nil {
		t.Fatal(err)
	}
	_, err := l.Commit(ctx, Unit{Transfers: []Transfer{single(uuid.New(), AccountInFlight, till, 1_000_001)}})
	wantCode(t, err, softatm.ETillShort)

	pending := Transfer{ID: uuid.New(), Debit: AccountInFlight, Credit: till, Amount: 600_000, Currency: vnd, Kind: KindPending}
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{pending}}); err != nil {
		t.Fatal(err)
	}
	_, err = l.Commit(ctx, Unit{Transfers: []Transfer{single(uuid.New(), AccountInFlight, till, 400_001)}})
	wantCode(t, err, softatm.ETillShort)
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{single(uuid.New(), AccountInFlight, till, 400_000)}}); err != nil {
		t.Fatalf("paying out the last 400,000: %v", err)
	}
	_, err = l.Commit(ctx, Unit{Transfers: []Transfer{single(uuid.New(), AccountInFlight, till, 1)}})
	wantCode(t, err, softatm.ETillShort)
	if a := mustAccount(t, l, till); a.DebitsPosted != 1_000_000 || a.CreditsPosted != 400_000 || a.CreditsPending != 600_000 {
		t.Fatalf("till %+v, want 1,000,000 in, 400,000 out, 600,000 promised", a)
	}
	mustCheck(t, pool)
}

// TestTwoPhaseRefusals: a post or void is refused when it resolves what is
// not a hold, names another amount (void), other accounts or another
// currency than its hold; a transfer is refused when its currency is not
// its accounts'. Each refusal moves nothing.
func TestTwoPhaseRefusals(t *testing.T) {
	t.Parallel()
	l, pool := mustLedger(t)
	ctx := context.Background()
	if err := l.EnsureAccount(ctx, "test:usd", "USD", 0); err != nil {
		t.Fatal(err)
	}
	w := uuid.New()
	hold := HoldTransfer(w, "MB", 500_000, vnd)
	posted := single(uuid.New(), AccountSettlement, ReceivableCode("VCB"), 1000)
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{hold, posted}}); err != nil {
		t.Fatal(err)
	}
	before := mustAccount(t, l, ReceivableCode("MB"))
	for _, tc := range []struct {
		name string
		tr   Transfer
		code string
	}{
		{"post of a posted transfer", Transfer{ID: uuid.New(), Kind: KindPostPending, PendingID: posted.ID}, softatm.EInvalid},
		{"void of a posted transfer", Transfer{ID: uuid.New(), Kind: KindVoidPending, PendingID: posted.ID}, softatm.EInvalid},
		{"void of part of a hold", Transfer{ID: uuid.New(), Kind: KindVoidPending, PendingID: hold.ID, Amount: 400_000}, softatm.EInvalidAmount},
		{"void of more than a hold", Transfer{ID: uuid.New(), Kind: KindVoidPending, PendingID: hold.ID, Amount: 500_001}, softatm.EInvalidAmount},
		{"post to another debit account", Transfer{ID: uuid.New(), Kind: KindPostPending, PendingID: hold.ID,
			Debit: ReceivableCode("VCB")}, softatm.EInvalid},
		{"post to another credit account", Transfer{ID: uuid.New(), Kind: KindPostPending, PendingID: hold.ID,
			Credit: AccountFees}, softatm.EInvalid},
		{"post in another currency", Transfer{ID: uuid.New(), Kind: KindPostPending, PendingID: hold.ID, Currency: "USD"}, softatm.EInvalid},
		{"VND into a USD account", single(uuid.New(), AccountSettlement, "test:usd", 1000), softatm.EInvalid},
		{"USD out of VND accounts", Transfer{ID: uuid.New(), Debit: AccountSettlement, Credit: AccountFees, Amount: 1000,
			Currency: "USD", Kind: KindSingle}, softatm.EInvalid},
	} {
		_, err := l.Commit(ctx, Unit{Transfers: []Transfer{tc.tr}})
		if got := softatm.ErrorCode(err); got != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if a := mustAccount(t, l, ReceivableCode("MB")); a != before {
		t.Fatalf("receivable moved by refused transfers: %+v, was %+v", a, before)
	}
	// The whole hold, named or not, can still be voided.
	if _, err := l.Commit(ctx, Unit{Transfers: []Transfer{{ID: uuid.New(), Kind: KindVoidPending, PendingID: hold.ID,
		Amount: 500_000}}}); err != nil {
		t.Fatalf("void of the whole hold: %v", err)
	}
	if a := mustAccount(t, l, ReceivableCode("MB")); a.DebitsPending != 0 || a.DebitsPosted != 0 {
		t.Fatalf("receivable after the void: %+v", a)
	}
	mustCheck(t, pool)
}
