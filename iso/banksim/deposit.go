package banksim

import (
	"strings"
	"time"

	"github.com/softatm/softatm/iso"
)

// Deposits, as the issuing bank books them (see iso/deposit.go for the
// messages): a 0200 with processing code 210000 credits the account at
// once; a 0420 with the same processing code debits back what it credited,
// or, when its 0200 has not arrived, makes sure it never credits; a 0100
// with processing code 330000 answers the holder's name in field 48.

// Credit states.
const (
	CreditDone     = "credited"
	CreditReversed = "reversed"
)

// Credit is money credited by an approved 0200.
type Credit struct {
	ApprovalCode string
	Account      string
	RRN, STAN    string
	Amount       int64
	State        string
	CreatedAt    time.Time
	ResolvedAt   time.Time
	terminal     string
}

// Credits returns every credit, oldest first.
func (s *Sim) Credits() []Credit {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Credit, len(s.credits))
	for i, c := range s.credits {
		out[i] = *c
	}
	return out
}

// creditBy finds a credit by RRN, or by the STAN and terminal of its 0200.
func (s *Sim) creditBy(rrn, stan, terminal string) *Credit {
	for _, c := range s.credits {
		if (rrn != "" && c.RRN == rrn) || (rrn == "" && c.STAN == stan && c.terminal == terminal) {
			return c
		}
	}
	return nil
}

// credit books a 0200 deposit.
func (s *Sim) credit(m *iso.Message, lie string) *iso.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, number := s.now(), m.AccountID()
	log, decline := s.declines(m)
	a, amount, refused := s.screen(m, iso.ProcessingDeposit, decline)
	if refused != nil {
		return refused
	}
	if c := s.creditBy(m.RRN, "", ""); c != nil {
		// One RRN is one deposit: a 0200 again under it credits nothing.
		return decline(iso.RCDuplicate, "RRN already credited")
	}
	// A bank that answers with another amount credits the amount it says
	// (as a lying 0110 holds it), so its books agree with its reply.
	credited := amount
	if lie == FaultReplyAmount {
		credited = saidAmount(amount)
	}
	code := s.newApprovalCode()
	for s.creditByCode(code) {
		code = s.newApprovalCode()
	}
	c := &Credit{ApprovalCode: code, Account: number, RRN: m.RRN, STAN: m.STAN, Amount: credited,
		State: CreditDone, CreatedAt: now, terminal: terminalOf(m)}
	a.Balance += credited
	s.credits = append(s.credits, c)
	log.Info("0200 approved, account credited", "approval_code", code, "amount", credited, "requested", amount)
	r := replyTo(m, iso.RCApproved)
	r.ApprovalCode = code
	return r
}

func (s *Sim) creditByCode(code string) bool {
	for _, c := range s.credits {
		if c.ApprovalCode == code {
			return true
		}
	}
	return false
}

// reverseCredit debits back the credit a deposit's 0420 names. A reversal
// of a credit never made answers 00 and remembers the RRN, so a 0200 that
// arrives after it credits nothing; a repeat answers 00 and changes nothing.
func (s *Sim) reverseCredit(m *iso.Message) *iso.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.log.With("mti", m.MTI, "stan", m.STAN, "rrn", m.RRN, "account", iso.Mask(m.AccountID()))
	if missing(m.STAN, m.TerminalID, m.OriginalData) {
		log.Warn("deposit reversal: mandatory field missing")
		return replyTo(m, iso.RCFormatError)
	}
	orig, err := iso.ParseOriginal(m.OriginalData, s.now())
	if err != nil {
		log.Warn("deposit reversal: bad field 90", "err", err)
		return replyTo(m, iso.RCFormatError)
	}
	c := s.creditBy(m.RRN, orig.STAN, terminalOf(m))
	switch {
	case c == nil:
		if m.RRN != "" {
			s.remember(reversedKey(m.RRN))
		}
		log.Info("deposit reversal: nothing credited", "orig_stan", orig.STAN)
		return replyTo(m, iso.RCApproved)
	case c.State == CreditReversed:
		log.Info("deposit reversal repeated", "approval_code", c.ApprovalCode)
		return replyTo(m, iso.RCApproved)
	}
	s.accounts[c.Account].Balance -= c.Amount
	c.State, c.ResolvedAt = CreditReversed, s.now()
	log.Info("deposit reversed", "approval_code", c.ApprovalCode, "amount", c.Amount)
	return replyTo(m, iso.RCApproved)
}

// verify answers an account verification with the holder's name.
func (s *Sim) verify(m *iso.Message) *iso.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	number := m.AccountID()
	if missing(number, m.STAN, m.TerminalID) {
		return replyTo(m, iso.RCFormatError)
	}
	a, ok := s.accounts[number]
	if !ok {
		s.log.Info("verification: unknown account", "account", iso.Mask(number))
		return replyTo(m, iso.RCInvalidAccount)
	}
	if a.Blocked {
		return replyTo(m, iso.RCDoNotHonour)
	}
	r := replyTo(m, iso.RCApproved)
	r.AdditionalData = strings.ToUpper(iso.ASCIIFold(a.Holder))
	return r
}
