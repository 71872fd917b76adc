package banksim

import (
	"log/slog"
	"strings"

	"github.com/softatm/softatm/iso"
)

// replyTo builds the reply to m with response code rc, echoing the fields a
// peer matches on and reconciles with.
func replyTo(m *iso.Message, rc string) *iso.Message {
	return &iso.Message{
		MTI:                  iso.ResponseMTI(m.MTI),
		PAN:                  m.PAN,
		ProcessingCode:       m.ProcessingCode,
		Amount:               m.Amount,
		TransmissionDateTime: m.TransmissionDateTime,
		STAN:                 m.STAN,
		LocalTime:            m.LocalTime,
		LocalDate:            m.LocalDate,
		AcquirerID:           m.AcquirerID,
		RRN:                  m.RRN,
		ApprovalCode:         m.ApprovalCode,
		TerminalID:           m.TerminalID,
		CardAcceptor:         m.CardAcceptor,
		Currency:             m.Currency,
		NetworkCode:          m.NetworkCode,
		Account:              m.Account,
		ResponseCode:         rc,
	}
}

// process applies m to the books and returns the reply, or nil when m is
// not a request we answer. lie is the reply_* fault the reply will carry
// ("" for an honest reply): a 0100 answered with another amount holds that
// amount.
func (s *Sim) process(m *iso.Message, lie string) *iso.Message {
	switch m.MTI {
	case iso.MTINetworkRequest:
		rc := iso.RCApproved
		switch m.NetworkCode {
		case iso.NetworkSignOn, iso.NetworkSignOff, iso.NetworkEcho:
		default:
			rc = iso.RCInvalidTransaction
		}
		s.log.Debug("network message", "code", m.NetworkCode, "stan", m.STAN)
		return replyTo(m, rc)
	case iso.MTIAuthRequest:
		if m.ProcessingCode == iso.ProcessingAccountVerify {
			return s.verify(m)
		}
		return s.authorize(m, lie)
	case iso.MTIFinancialRequest:
		return s.credit(m, lie)
	case iso.MTIAdvice, iso.MTIAdviceRepeat:
		return s.capture(m)
	case iso.MTIReversal, iso.MTIReversalRepeat:
		return s.release(m)
	}
	s.log.Warn("unsupported MTI, not answered", "mti", m.MTI, "stan", m.STAN)
	return nil
}

func missing(values ...string) bool {
	for _, v := range values {
		if v == "" {
			return true
		}
	}
	return false
}

// reversedKey marks, in the seen set, an RRN reversed before its 0100 came.
func reversedKey(rrn string) string { return "reversed|" + rrn }

func terminalOf(m *iso.Message) string { return strings.TrimRight(m.TerminalID, " ") }

// declines returns the log of financial request m and its decline: a
// reply with a response code, logged with why.
func (s *Sim) declines(m *iso.Message) (*slog.Logger, func(rc, why string) *iso.Message) {
	log := s.log.With("mti", m.MTI, "stan", m.STAN, "rrn", m.RRN, "account", iso.Mask(m.AccountID()))
	return log, func(rc, why string) *iso.Message {
		log.Info(m.MTI+" declined", "rc", rc, "why", why)
		return replyTo(m, rc)
	}
}

// screen runs what every financial request (a 0100 hold, a 0200 credit)
// passes before its own money checks: mandatory fields, amount,
// transmission time, processing code proc, currency, a known account that
// is not blocked, not a duplicate, not reversed before it came. It returns
// the account and amount, or the decline to answer with. s.mu is held.
func (s *Sim) screen(m *iso.Message, proc string, decline func(rc, why string) *iso.Message) (*account, int64, *iso.Message) {
	now := s.now()
	number := m.AccountID()
	if missing(number, m.ProcessingCode, m.Amount, m.TransmissionDateTime, m.STAN, m.RRN, m.TerminalID, m.Currency) {
		return nil, 0, decline(iso.RCFormatError, "mandatory field missing")
	}
	amount, err := iso.ParseAmount(m.Amount)
	if err != nil {
		return nil, 0, decline(iso.RCFormatError, err.Error())
	}
	if _, err := iso.ParseTransmissionTime(m.TransmissionDateTime, now); err != nil {
		return nil, 0, decline(iso.RCFormatError, err.Error())
	}
	if m.ProcessingCode != proc {
		return nil, 0, decline(iso.RCInvalidTransaction, "processing code "+m.ProcessingCode)
	}
	if m.Currency != iso.CurrencyVND {
		return nil, 0, decline(iso.RCInvalidTransaction, "currency "+m.Currency)
	}
	if amount <= 0 {
		return nil, 0, decline(iso.RCInvalidAmount, "amount not positive")
	}
	a, ok := s.accounts[number]
	if !ok {
		return nil, 0, decline(iso.RCInvalidAccount, "unknown account")
	}
	if a.Blocked {
		return nil, 0, decline(iso.RCDoNotHonour, "account blocked")
	}
	dupKey := m.STAN + "|" + terminalOf(m) + "|" + m.TransmissionDateTime
	if _, dup := s.seen[dupKey]; dup {
		return nil, 0, decline(iso.RCDuplicate, "STAN, terminal and transmission time seen before")
	}
	s.remember(dupKey)
	if _, reversed := s.seen[reversedKey(m.RRN)]; reversed {
		// The reversal overtook its request: the acquirer has already given
		// up on it, so a hold placed now would never be released.
		return nil, 0, decline(iso.RCDuplicate, "reversed before it arrived")
	}
	return a, amount, nil
}

func (s *Sim) authorize(m *iso.Message, lie string) *iso.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, number := s.now(), m.AccountID()
	log, decline := s.declines(m)
	a, amount, refused := s.screen(m, iso.ProcessingCashWithdrawal, decline)
	if refused != nil {
		return refused
	}
	if a.Balance-a.held < amount {
		return decline(iso.RCInsufficientFunds, "balance less holds below amount")
	}
	s.rollDay(a)
	if a.DailyLimit > 0 && a.withdrawn+a.held+amount > a.DailyLimit {
		return decline(iso.RCExceedsLimit, "daily limit")
	}
	// The request passed every check for its own amount; a bank that
	// answers with another amount holds the amount it says (see the
	// package comment), so the books agree with its reply.
	held := amount
	if lie == FaultReplyAmount {
		held = saidAmount(amount)
	}
	h := &Hold{
		ApprovalCode: s.newApprovalCode(), Account: number, RRN: m.RRN, STAN: m.STAN,
		Amount: held, State: HoldHeld, CreatedAt: now, terminal: terminalOf(m), acceptor: strings.TrimRight(m.CardAcceptor, " "),
	}
	a.held += held
	s.holds[h.ApprovalCode] = h
	s.holdOrder = append(s.holdOrder, h)
	s.byRRN[h.RRN] = h
	s.byOrigSTAN[h.STAN+"|"+h.terminal] = h
	log.Info("0100 approved, hold placed", "approval_code", h.ApprovalCode, "amount", held, "requested", amount)
	r := replyTo(m, iso.RCApproved)
	r.ApprovalCode = h.ApprovalCode
	return r
}

// capture completes the hold an advice names. Repeats answer 00 again and
// change nothing.
func (s *Sim) capture(m *iso.Message) *iso.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.log.With("mti", m.MTI, "stan", m.STAN, "rrn", m.RRN, "account", iso.Mask(m.AccountID()))
	if missing(m.STAN, m.TerminalID, m.Amount) || (m.ApprovalCode == "" && m.RRN == "") {
		log.Warn("advice: mandatory field missing")
		return replyTo(m, iso.RCFormatError)
	}
	amount, err := iso.ParseAmount(m.Amount)
	if err != nil {
		log.Warn("advice: bad amount", "err", err)
		return replyTo(m, iso.RCFormatError)
	}
	var h *Hold
	if code := strings.TrimRight(m.ApprovalCode, " "); code != "" {
		h = s.holds[code]
	} else {
		h = s.byRRN[m.RRN]
	}
	switch {
	case h == nil:
		log.Warn("advice for unknown hold", "approval_code", m.ApprovalCode)
		return replyTo(m, iso.RCInvalidTransaction)
	case s.mispaired(m, h) != "":
		log.Warn("advice does not pair with its hold", "why", s.mispaired(m, h))
		return replyTo(m, iso.RCInvalidTransaction)
	case m.RRN != "" && h.RRN != m.RRN:
		log.Warn("advice RRN does not match the hold", "hold_rrn", h.RRN)
		return replyTo(m, iso.RCInvalidTransaction)
	case amount != h.Amount:
		log.Warn("advice amount does not match the hold", "amount", amount, "held", h.Amount)
		return replyTo(m, iso.RCInvalidAmount)
	case h.State == HoldCaptured:
		log.Info("advice repeated, hold already captured", "approval_code", h.ApprovalCode)
		return replyTo(m, iso.RCApproved)
	case h.State == HoldReleased:
		log.Warn("advice for a released hold refused", "approval_code", h.ApprovalCode)
		return replyTo(m, iso.RCInvalidTransaction)
	}
	a := s.accounts[h.Account]
	s.rollDay(a)
	a.held -= h.Amount
	a.Balance -= h.Amount
	a.withdrawn += h.Amount
	h.State, h.ResolvedAt = HoldCaptured, s.now()
	log.Info("hold captured", "approval_code", h.ApprovalCode, "amount", h.Amount)
	return replyTo(m, iso.RCApproved)
}

// release reverses the hold a reversal names. A reversal of a hold never
// made, or already released, answers 00 and changes nothing.
func (s *Sim) release(m *iso.Message) *iso.Message {
	if m.ProcessingCode == iso.ProcessingDeposit {
		return s.reverseCredit(m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.log.With("mti", m.MTI, "stan", m.STAN, "rrn", m.RRN, "account", iso.Mask(m.AccountID()))
	if missing(m.STAN, m.TerminalID, m.OriginalData) {
		log.Warn("reversal: mandatory field missing")
		return replyTo(m, iso.RCFormatError)
	}
	orig, err := iso.ParseOriginal(m.OriginalData, s.now())
	if err != nil {
		log.Warn("reversal: bad field 90", "err", err)
		return replyTo(m, iso.RCFormatError)
	}
	var h *Hold
	if code := strings.TrimRight(m.ApprovalCode, " "); code != "" {
		h = s.holds[code]
	}
	if h == nil && m.RRN != "" {
		h = s.byRRN[m.RRN]
	}
	if h == nil {
		h = s.byOrigSTAN[orig.STAN+"|"+terminalOf(m)]
	}
	switch {
	case h == nil:
		// Remember it: if the 0100 it reverses is still on its way, it must
		// not place a hold when it arrives.
		if m.RRN != "" {
			s.remember(reversedKey(m.RRN))
		}
		log.Info("reversal: no hold to release", "orig_stan", orig.STAN)
		return replyTo(m, iso.RCApproved)
	case s.mispaired(m, h) != "":
		log.Warn("reversal does not pair with its hold", "why", s.mispaired(m, h))
		return replyTo(m, iso.RCInvalidTransaction)
	case h.State == HoldReleased:
		log.Info("reversal repeated, hold already released", "approval_code", h.ApprovalCode)
		return replyTo(m, iso.RCApproved)
	case h.State == HoldCaptured:
		log.Warn("reversal of a captured hold refused", "approval_code", h.ApprovalCode)
		return replyTo(m, iso.RCInvalidTransaction)
	}
	s.accounts[h.Account].held -= h.Amount
	h.State, h.ResolvedAt = HoldReleased, s.now()
	log.Info("hold released", "approval_code", h.ApprovalCode, "amount", h.Amount)
	return replyTo(m, iso.RCApproved)
}
