package atmswitch

import "testing"

// A claim is committed directly, off the committer; a move with a guard
// over other rows never is, whatever its event: the committer's one move
// at a time is what keeps two of them from both passing the guard.
func TestGuardedMovesAreNotDirect(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		m    Move
		want bool
	}{
		{"a claim", Move{Event: EvClaim}, true},
		{"a deposit's claim", Move{Kind: KindDeposit, Event: EvClaim}, true},
		{"a claim with a till guard", Move{Kind: KindDeposit, Event: EvClaim, TillRoom: &TillRoom{PostOffice: "LS-001", Amount: 1}}, false},
		{"a claim with a large-cash guard", Move{Kind: KindDeposit, Event: EvClaim, UnderLargeCash: &UnderLargeCash{Amount: 1}}, false},
		{"a payout", Move{Event: EvPay}, false},
		{"a release", Move{Event: EvRelease}, false},
	} {
		if got := direct(c.m); got != c.want {
			t.Errorf("%s: direct %v, want %v", c.name, got, c.want)
		}
	}
}
