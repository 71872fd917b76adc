package ledger

import (
	"fmt"
	"time"

	softatm "github.com/softatm/softatm"
)

// Cutoff is a bank's business-day cut-off: the last second, in the
// ledger's zone, that still belongs to a calendar day. An event later than
// it belongs to the next day. The cut-off is agreed with the bank: it is
// the bank's settlement file that draws the line, so the switch draws it
// at the same second (see Unit.Cutoff), never at the moment a person
// clicks "Close day".
type Cutoff struct {
	Hour, Minute, Second int
}

// DefaultCutoff is the cut-off of a bank that has not agreed another one:
// the whole calendar day.
var DefaultCutoff = Cutoff{23, 59, 59}

// ParseCutoff reads "HH:MM" or "HH:MM:SS" (24-hour clock). "HH:MM" means
// the minute's last second: 17:00 keeps 17:00:59 in the day, as a bank
// that says "until 17:00" would.
func ParseCutoff(s string) (Cutoff, error) {
	var c Cutoff
	if t, err := time.Parse("15:04:05", s); err == nil {
		c = Cutoff{t.Hour(), t.Minute(), t.Second()}
	} else if t, err := time.Parse("15:04", s); err == nil {
		c = Cutoff{t.Hour(), t.Minute(), 59}
	} else {
		return Cutoff{}, softatm.Errorf(softatm.EInvalid, "cut-off %q: want HH:MM or HH:MM:SS", s)
	}
	return c, nil
}

// String is the cut-off as HH:MM:SS, which is also how PostgreSQL writes a
// TIME and how ParseCutoff reads it back.
func (c Cutoff) String() string { return fmt.Sprintf("%02d:%02d:%02d", c.Hour, c.Minute, c.Second) }

func (c Cutoff) valid() bool {
	return c.Hour >= 0 && c.Hour < 24 && c.Minute >= 0 && c.Minute < 60 && c.Second >= 0 && c.Second < 60
}

// seconds is the cut-off as seconds after midnight.
func (c Cutoff) seconds() int { return c.Hour*3600 + c.Minute*60 + c.Second }

// DateAt returns the business date of an event at t: t's calendar date in
// loc, or the next one when t is later than the cut-off (past its last
// second: 23:59:59.999 is still the day under 23:59:59).
func (c Cutoff) DateAt(t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	y, m, d := local.Date()
	if local.Hour()*3600+local.Minute()*60+local.Second() > c.seconds() {
		return civilDate(y, m, d+1)
	}
	return civilDate(y, m, d)
}

// Passed returns the first instant at which business day date is over
// under cut-off c: the second after the cut-off on that calendar day.
func (c Cutoff) Passed(date time.Time, loc *time.Location) time.Time {
	y, m, d := date.Date()
	return time.Date(y, m, d, c.Hour, c.Minute, c.Second, 0, loc).Add(time.Second)
}

// Latest returns the latest of cuts (DefaultCutoff when there is none):
// a day is over for every bank only when the latest cut-off has passed.
func Latest(cuts []Cutoff) Cutoff {
	if len(cuts) == 0 {
		return DefaultCutoff
	}
	out := cuts[0]
	for _, c := range cuts[1:] {
		if c.seconds() > out.seconds() {
			out = c
		}
	}
	return out
}
