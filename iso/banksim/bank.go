package banksim

import (
	"fmt"
	"time"

	"github.com/softatm/softatm/iso"
)

// bankConfig is the bank the simulator plays: its code, which names its
// settlement files, and its business-day cut-off, which dates them.
type bankConfig struct {
	code string
	// cutoffSec is the cut-off as seconds after local midnight, less
	// defaultCutoffSec: the zero value is the default 23:59:59.
	cutoffSec int
	// byBank: the cut-offs of a simulator that plays several banks on one
	// link (WithBankCutoff), in the same form.
	byBank map[string]int
}

// defaultCutoffSec is 23:59:59, the cut-off of a bank that agreed none
// (ledger.DefaultCutoff).
const defaultCutoffSec = 23*3600 + 59*60 + 59

// WithBank makes the simulator play bank code: its settlement file is that
// bank's, named after it and holding only its accounts' captures.
func WithBank(code string) Option { return func(s *Sim) { s.bank.code = code } }

// WithCutoff sets the bank's business-day cut-off (default 23:59:59 in
// Vietnam time): a capture later than it is in the next day's settlement
// file, and the replies' field 15 says so.
func WithCutoff(hour, minute, second int) Option {
	return func(s *Sim) { s.bank.cutoffSec = hour*3600 + minute*60 + second - defaultCutoffSec }
}

// WithBankCutoff sets one bank's cut-off, for a simulator that plays
// several banks on one link: its accounts' captures are dated by it.
func WithBankCutoff(bank string, hour, minute, second int) Option {
	return func(s *Sim) {
		if s.bank.byBank == nil {
			s.bank.byBank = map[string]int{}
		}
		s.bank.byBank[bank] = hour*3600 + minute*60 + second - defaultCutoffSec
	}
}

// Bank returns the code of the bank the simulator plays ("" when none was
// given).
func (s *Sim) Bank() string { return s.bank.code }

// cutoffOf returns bank's cut-off as seconds after local midnight.
func (s *Sim) cutoffOf(bank string) int {
	if c, ok := s.bank.byBank[bank]; ok {
		return c + defaultCutoffSec
	}
	return s.bank.cutoffSec + defaultCutoffSec
}

// Cutoff returns the bank's cut-off as HH:MM:SS.
func (s *Sim) Cutoff() string { return s.CutoffOf(s.bank.code) }

// CutoffOf returns bank's cut-off as HH:MM:SS.
func (s *Sim) CutoffOf(bank string) string {
	c := s.cutoffOf(bank)
	return fmt.Sprintf("%02d:%02d:%02d", c/3600, c/60%60, c%60)
}

// BusinessDate returns the bank's business date of an event at t: its
// Vietnam calendar date, or the next one when t is later than the cut-off.
// It is midnight UTC of that date.
func (s *Sim) BusinessDate(t time.Time) time.Time { return s.BusinessDateOf(s.bank.code, t) }

// BusinessDateOf is BusinessDate under bank's cut-off.
func (s *Sim) BusinessDateOf(bank string, t time.Time) time.Time {
	local := t.In(iso.LocalZone)
	y, m, d := local.Date()
	if local.Hour()*3600+local.Minute()*60+local.Second() > s.cutoffOf(bank) {
		d++
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// settlementDate is field 15 of a reply about account: the business date
// of now under the cut-off of the account's bank.
func (s *Sim) settlementDate(account string) string {
	bank := s.bank.code
	s.mu.Lock()
	if a, ok := s.accounts[account]; ok && a.Bank != "" {
		bank = a.Bank
	}
	s.mu.Unlock()
	return s.BusinessDateOf(bank, s.now()).Format("0102")
}
