package iso

import (
	"testing"
	"time"
)

// TestSettlementDay: field 15 has no year; the one nearest the expected
// date is taken, across a new year both ways, and nonsense is refused.
func TestSettlementDay(t *testing.T) {
	t.Parallel()
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		mmdd string
		near time.Time
		want time.Time
		ok   bool
	}{
		{"1127", d(2026, 11, 27), d(2026, 11, 27), true},
		{"1128", d(2026, 11, 27), d(2026, 11, 28), true},
		{"0101", d(2026, 12, 31), d(2027, 1, 1), true},
		{"1231", d(2027, 1, 1), d(2026, 12, 31), true},
		{"0229", d(2028, 2, 28), d(2028, 2, 29), true},
		{"0230", d(2026, 2, 27), time.Time{}, false},
		{"1301", d(2026, 11, 27), time.Time{}, false},
		{"11a7", d(2026, 11, 27), time.Time{}, false},
		{"112", d(2026, 11, 27), time.Time{}, false},
		{"", d(2026, 11, 27), time.Time{}, false},
	} {
		got, ok := SettlementDay(c.mmdd, c.near)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("SettlementDay(%q, %s) = %s %v, want %s %v", c.mmdd, c.near.Format(time.DateOnly), got, ok, c.want, c.ok)
		}
	}
}

// FuzzSettlementDay: whatever the bank sends in field 15, the answer is
// refused or a date within half a year of the expected one.
func FuzzSettlementDay(f *testing.F) {
	for _, s := range []string{"1127", "0101", "0230", "9999", "", "12345"} {
		f.Add(s)
	}
	near := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := SettlementDay(s, near)
		if ok && (d.Sub(near).Abs() > settlementDayWindow || d.Format("0102") != s) {
			t.Fatalf("%q read as %s", s, d)
		}
	})
}
