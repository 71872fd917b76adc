package atmswitch

import (
	"time"

	"github.com/softatm/softatm/iso"
)

// Config holds every limit, timeout and TTL of the lifecycle, each with its
// default beside it in DefaultConfig.
type Config struct {
	Currency string // ISO 4217 numeric; VND is "704" and has no minor unit

	AmountMin int64 // smallest withdrawal
	AmountMax int64 // largest single withdrawal
	NoteUnit  int64 // amounts must be a multiple of the smallest note a post office pays
	// AccountDailyMax is the most one account (bank and account number) may
	// withdraw over any 24 hours: a rolling window of creations, not the
	// business day, so that a withdrawal just before and one just after the
	// day's close count together. It is on top of the bank's own limits;
	// 0 sets none of our own.
	AccountDailyMax int64

	CodeTTL      time.Duration // how long a code can be redeemed
	ClockSkew    time.Duration // allowed between the switch instances and the kiosks
	ClaimTTL     time.Duration // how long a teller's claim lasts before the code is free again
	AuthTimeout  time.Duration // deadline for the 0110
	RequestedMax time.Duration // a 'requested' row older than this is failed and reversed by the sweeper

	NumericFailMax    int           // wrong numeric entries per kiosk and per teller per window
	NumericFailWindow time.Duration // the window of the kiosk, teller and post-office caps; it starts at the first wrong entry

	// Numeric entry (12-digit code + last 4 phone digits) is also capped per
	// post office and per code; see Service.identify. There is no
	// switch-wide cap: one let a few guessers lock every post office out.
	// softatm_numeric_failures_total and its alert
	// (deploy/prometheus/alerts.yml) watch the whole switch instead.
	NumericPostOfficeFailMax int // wrong numeric entries per post office (all its kiosks) per window
	NumericCodeFailMax       int // wrong phone digits per code, ever: then the code is blocked for numeric entry (its QR still pays)

	// TerminalID and CardAcceptorID are ISO fields 41 and 42 of every
	// message about a withdrawal: its 0100 and, read back from the
	// withdrawal's row (41) and OutboxConfig.CardAcceptorID (42, serve
	// sets it from this one), its 0220 and 0420. One identity per
	// withdrawal: a bank pairs an advice with its hold by STAN and
	// terminal. The kiosk and post office that paid are not in 41/42:
	// field 43 of the 0220 names the post office (iso.AcceptorLocation).
	TerminalID     string // ISO field 41, one per switch instance
	CardAcceptorID string // ISO field 42, ans15
	AcceptorName   string // ISO field 43's name part (25) on 0100s and 0420s
	AcceptorCity   string // ISO field 43's city part (13) on 0100s and 0420s; "" leaves it blank

	// Secret keys the hashes of numeric codes and phone digits. It must be
	// the same on every instance and must never change while codes live.
	Secret []byte

	// Deposits (cash in), deposit.go.
	DepositMin             int64         // smallest deposit
	DepositMax             int64         // largest single deposit
	DepositAccountDailyMax int64         // credited to one account in any 24 hours; 0: none
	DepositCodeTTL         time.Duration // how long a deposit code can be brought to a counter; at most CodeTTL (the keyring refuses longer-lived codes: key retirement counts on it)
	WalkInTTL              time.Duration // how long a walk-in deposit the teller started stays open (released, not confirmed)
	CreditTimeout          time.Duration // deadline for the 0210
	CreditingMax           time.Duration // a 'crediting' deposit older than this is failed and reversed by the sweeper
	// LargeCashThreshold: a customer's (account's) deposits of one
	// business day at or above it need the ID number the teller types,
	// and are reported (Vietnam's AML rules: 400,000,000 VND a day).
	LargeCashThreshold int64
}

// DefaultCardAcceptorID is field 42 of every message unless configured.
const DefaultCardAcceptorID = "SOFTATM"

// AcceptorLocation is field 43 of the switch's own 0100s and 0420s.
func (c Config) acceptorLocation() string {
	return iso.AcceptorLocation(c.AcceptorName, c.AcceptorCity, iso.CountryVN)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Currency:          "704",
		AmountMin:         50_000,
		AmountMax:         10_000_000,
		NoteUnit:          10_000,
		AccountDailyMax:   20_000_000,
		CodeTTL:           6 * time.Hour,
		ClockSkew:         30 * time.Second,
		ClaimTTL:          2 * time.Minute,
		AuthTimeout:       10 * time.Second,
		RequestedMax:      30 * time.Second,
		NumericFailMax:    5,
		NumericFailWindow: 15 * time.Minute,
		TerminalID:        "SATM0001",
		CardAcceptorID:    DefaultCardAcceptorID,
		AcceptorName:      "SOFTATM CASH-OUT SWITCH",

		NumericPostOfficeFailMax: 20,
		NumericCodeFailMax:       3,

		DepositMin:             50_000,
		DepositMax:             500_000_000,
		DepositAccountDailyMax: 1_000_000_000,
		DepositCodeTTL:         6 * time.Hour,
		WalkInTTL:              15 * time.Minute,
		CreditTimeout:          10 * time.Second,
		CreditingMax:           30 * time.Second,
		LargeCashThreshold:     400_000_000,
	}
}
