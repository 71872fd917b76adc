package iso

import (
	"fmt"
	"strings"
	"time"
)

// AuthRequest is a 0100 hold request: reserve Amount on Account.
type AuthRequest struct {
	STAN          string    // 6 digits, from Client.NextSTAN
	RRN           string    // 12 characters (field 37)
	TransmittedAt time.Time // field 7 (UTC MMDDhhmmss); fields 12/13 in Vietnam time
	Account       string    // field 102 (never logged in clear)
	Amount        int64     // field 4, n12, minor units
	Currency      string    // field 49, numeric "704"
	// Fields 41 and 42 name the acquirer's terminal and card acceptor: the
	// switch's own (switch Config.TerminalID and CardAcceptorID), the same
	// on every message about one withdrawal, so a bank can pair its 0220
	// or 0420 with this hold by STAN (field 90) and terminal.
	TerminalID   string // field 41, ans8
	CardAcceptor string // field 42, ans15 (space padded)
	AcceptorName string // field 43, ans40: see AcceptorLocation (folded to ASCII, cut to 40)
}

// AuthResponse is the part of a 0110 the switch needs. A 0110 reaches the
// caller only after CheckReply, so STAN, RRN, Amount and Currency equal the
// request's; they are still taken from the reply because they are what the
// bank answered, and Amount with ApprovalCode is exactly what to store as
// approved.
type AuthResponse struct {
	ResponseCode string
	ApprovalCode string // field 38, trailing spaces removed; empty unless approved
	STAN, RRN    string
	Amount       int64  // field 4 as answered, minor units: the approved amount
	Currency     string // field 49 as answered
}

// AdviceRequest is a 0220/0221 completion advice (Client.Advise) or a
// 0420/0421 reversal advice (Client.Reverse).
type AdviceRequest struct {
	Repeat        bool // true → 0221 / 0421
	STAN, RRN     string
	TransmittedAt time.Time
	Account       string
	Amount        int64
	Currency      string
	ApprovalCode  string // field 38; empty for a reversal of a 0100 that got no reply
	// TerminalID, CardAcceptor and RRN are the original 0100's (see
	// AuthRequest); AcceptorName (43) says where the cash was paid.
	TerminalID   string
	CardAcceptor string
	AcceptorName string
	Original     Original // field 90: the original 0100's MTI, STAN, time and acquirer
	// SettlementDate, if set, is the business date the acquirer booked
	// the transaction in (field 15, MMDD): the day it expects to find it
	// in the issuer's settlement file.
	SettlementDate time.Time
	// ProcessingCode is field 3 of the message reversed; empty: a cash
	// withdrawal's. A deposit's reversal carries ProcessingDeposit (and
	// Original.MTI 0200), so the bank knows which way the money went.
	ProcessingCode string
}

// AdviceResponse is the part of a 0230/0430 the switch needs.
type AdviceResponse struct {
	ResponseCode string
	// SettlementDate is field 15 of the reply (MMDD), "" when the bank
	// sent none: the business date the bank booked the capture in. See
	// SettlementDay.
	SettlementDate string
}

// settlementDayWindow is how far from the expected date SettlementDay
// looks for the year of an MMDD (half a year either way).
const settlementDayWindow = 183 * 24 * time.Hour

// SettlementDay reads field 15 (MMDD, no year) as the date nearest to
// near: a bank's settlement date is never months from the transaction, so
// the year is the one that puts it within half a year of near. ok is false
// for a malformed field.
func SettlementDay(mmdd string, near time.Time) (time.Time, bool) {
	if len(mmdd) != 4 || !isDigits(mmdd) {
		return time.Time{}, false
	}
	y := near.Year()
	for _, year := range []int{y - 1, y, y + 1} {
		d, err := time.Parse("20060102", fmt.Sprintf("%04d%s", year, mmdd))
		if err != nil {
			continue // 0229 of a year without it; 0230, 1301 of none
		}
		if diff := d.Sub(time.Date(near.Year(), near.Month(), near.Day(), 0, 0, 0, 0, time.UTC)); diff.Abs() <= settlementDayWindow {
			return d, true
		}
	}
	return time.Time{}, false
}

// common holds the fields every financial message carries.
type common struct {
	stan, rrn          string
	at                 time.Time
	account            string
	amount             int64
	currency           string
	terminal, acceptor string
	name               string
}

func (c common) fill(m *Message, acquirerID string) error {
	if len(c.stan) != 6 || !isDigits(c.stan) {
		return fmt.Errorf("STAN %q: want 6 digits", c.stan)
	}
	rrn := ASCIIFold(c.rrn)
	if len(rrn) != 12 {
		return fmt.Errorf("RRN %q: want 12 characters", c.rrn)
	}
	if c.at.IsZero() {
		return fmt.Errorf("transmission time: not set")
	}
	if c.account == "" || len(c.account) > 28 || ASCIIFold(c.account) != c.account {
		return fmt.Errorf("account %s: want 1 to 28 ASCII characters", Mask(c.account))
	}
	amount, err := FormatAmount(c.amount)
	if err != nil {
		return err
	}
	if len(c.currency) != 3 || !isDigits(c.currency) {
		return fmt.Errorf("currency %q: want ISO 4217 numeric", c.currency)
	}
	if !isDigits(acquirerID) || len(acquirerID) > 11 {
		return fmt.Errorf("acquirer id %q: want up to 11 digits", acquirerID)
	}
	if strings.TrimSpace(c.terminal) == "" {
		return fmt.Errorf("terminal id: empty")
	}
	tid, err := padText(c.terminal, 8)
	if err != nil {
		return fmt.Errorf("terminal id: %w", err)
	}
	acceptor, err := padText(c.acceptor, 15)
	if err != nil {
		return fmt.Errorf("card acceptor: %w", err)
	}
	name := ASCIIFold(c.name)
	if len(name) > 40 {
		name = name[:40]
	}
	name, _ = padText(name, 40)
	local := c.at.In(LocalZone)

	m.ProcessingCode = ProcessingCashWithdrawal
	m.Amount = amount
	m.TransmissionDateTime = TransmissionTime(c.at)
	m.STAN = c.stan
	m.LocalTime = local.Format("150405")
	m.LocalDate = local.Format("0102")
	m.AcquirerID = acquirerID
	m.RRN = rrn
	m.TerminalID = tid
	m.CardAcceptor = acceptor
	m.AcceptorName = name
	m.Currency = c.currency
	m.Account = c.account
	return nil
}

// Message builds the 0100 for r.
func (r AuthRequest) Message(acquirerID string) (*Message, error) {
	m := &Message{MTI: MTIAuthRequest}
	c := common{r.STAN, r.RRN, r.TransmittedAt, r.Account, r.Amount, r.Currency, r.TerminalID, r.CardAcceptor, r.AcceptorName}
	if err := c.fill(m, acquirerID); err != nil {
		return nil, fmt.Errorf("0100: %w", err)
	}
	return m, nil
}

// Message builds the advice with the given base MTI ("0220" or "0420"; the
// repeat MTI is chosen from r.Repeat).
func (r AdviceRequest) Message(baseMTI, acquirerID string) (*Message, error) {
	mti := baseMTI
	if r.Repeat {
		switch baseMTI {
		case MTIAdvice:
			mti = MTIAdviceRepeat
		case MTIReversal:
			mti = MTIReversalRepeat
		}
	}
	if baseMTI != MTIAdvice && baseMTI != MTIReversal {
		return nil, fmt.Errorf("advice MTI %q: want 0220 or 0420", baseMTI)
	}
	m := &Message{MTI: mti}
	c := common{r.STAN, r.RRN, r.TransmittedAt, r.Account, r.Amount, r.Currency, r.TerminalID, r.CardAcceptor, r.AcceptorName}
	if err := c.fill(m, acquirerID); err != nil {
		return nil, fmt.Errorf("%s: %w", mti, err)
	}
	if r.ProcessingCode != "" {
		if len(r.ProcessingCode) != 6 || !isDigits(r.ProcessingCode) {
			return nil, fmt.Errorf("%s: processing code %q: want 6 digits", mti, r.ProcessingCode)
		}
		m.ProcessingCode = r.ProcessingCode
	}
	if r.ApprovalCode != "" {
		code, err := padText(r.ApprovalCode, 6)
		if err != nil {
			return nil, fmt.Errorf("%s: approval code: %w", mti, err)
		}
		m.ApprovalCode = code
	} else if baseMTI == MTIAdvice {
		return nil, fmt.Errorf("%s: approval code: empty", mti)
	}
	orig := r.Original
	if orig.AcquirerID == "" {
		// The original 0100 came from this acquirer: default to our own id.
		orig.AcquirerID = acquirerID
	}
	f90, err := orig.Field90()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mti, err)
	}
	m.OriginalData = f90
	if !r.SettlementDate.IsZero() {
		m.SettlementDate = r.SettlementDate.Format("0102")
	}
	return m, nil
}

// networkMessage builds an 0800 with the given field 70 code.
func networkMessage(code, stan string, at time.Time, acquirerID string) *Message {
	return &Message{
		MTI:                  MTINetworkRequest,
		TransmissionDateTime: TransmissionTime(at),
		STAN:                 stan,
		AcquirerID:           acquirerID,
		NetworkCode:          code,
	}
}

// Field 43 in the 1987 layout: the card acceptor's name, city and country.
const (
	AcceptorNameLen    = 25
	AcceptorCityLen    = 13
	AcceptorCountryLen = 2
	// CountryVN is field 43's country code of every acceptor of this
	// switch (ISO 3166 alpha-2).
	CountryVN = "VN"
)

// AcceptorLocation lays field 43 out as ISO 8583:1987 gives it: name in
// positions 1-25, city in 26-38, country code in 39-40, each folded to
// ASCII, cut to its width and padded with spaces. The switch puts there
// where the cash was paid (the post office's name and town) on a 0220,
// and its own name on the 0100 and 0420 (no cash has changed hands).
func AcceptorLocation(name, city, country string) string {
	part := func(s string, n int) string {
		s = ASCIIFold(strings.TrimSpace(s))
		if len(s) > n {
			s = strings.TrimRight(s[:n], " ")
		}
		return s + strings.Repeat(" ", n-len(s))
	}
	return part(name, AcceptorNameLen) + part(city, AcceptorCityLen) + part(country, AcceptorCountryLen)
}
