package atmswitch

import (
	"time"
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

	NumericFailMax    int           // failed numeric attempts per kiosk / per teller per window
	NumericGlobalMax  int           // failed numeric attempts across the whole switch per window
	NumericFailWindow time.Duration //

	TerminalID   string // ISO field 41 of 0100s, one per switch instance
	AcceptorName string // ISO field 43 of 0100s

	// Secret keys the hashes of numeric codes and phone digits. It must be
	// the same on every instance and must never change while codes live.
	Secret []byte
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
		NumericGlobalMax:  200,
		NumericFailWindow: 15 * time.Minute,
		TerminalID:        "SATM0001",
		AcceptorName:      "SOFTATM CASH-OUT SWITCH",
	}
}
