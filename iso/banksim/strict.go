package banksim

import (
	"strings"

	"github.com/softatm/softatm/iso"
)

// WithStrictPairing makes the simulator a bank that pairs a 0220/0221 or
// 0420/0421 with its hold the way many do: by the original STAN (field 90)
// and the terminal (41), and that wants the message to carry the hold's
// RRN (37) and card acceptor (42) as well. A message whose hold is found
// by approval code or RRN but fails that pairing is answered 12 (invalid
// transaction) and changes nothing: the hold stays held. Without it (the
// default) the simulator finds holds by approval code or RRN alone.
func WithStrictPairing() Option { return func(s *Sim) { s.strict = true } }

// mispaired returns why m does not pair with h in strict mode ("" when it
// does, or when the simulator is not strict). s.mu is held.
func (s *Sim) mispaired(m *iso.Message, h *Hold) string {
	if !s.strict {
		return ""
	}
	orig, err := iso.ParseOriginal(m.OriginalData, s.now())
	if err != nil {
		return "field 90: " + err.Error()
	}
	switch {
	case s.byOrigSTAN[orig.STAN+"|"+terminalOf(m)] != h:
		return "no hold under the original STAN " + orig.STAN + " and terminal " + terminalOf(m)
	case m.RRN != h.RRN:
		return "RRN " + m.RRN + " is not the hold's"
	case strings.TrimRight(m.CardAcceptor, " ") != h.acceptor:
		return "card acceptor " + strings.TrimRight(m.CardAcceptor, " ") + " is not the hold's " + h.acceptor
	}
	return ""
}
