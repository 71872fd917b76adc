package forecast

import (
	"go/build"
	"strings"
	"testing"
	"time"
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// history returns n days before today paying paid(d) each.
func history(today time.Time, n int, paid func(time.Time) int64) []Day {
	var h []Day
	for i := n; i >= 1; i-- {
		d := today.AddDate(0, 0, -i)
		h = append(h, Day{Date: d, Paid: paid(d)})
	}
	return h
}

func TestForecast(t *testing.T) {
	t.Parallel()
	today := date(2025, 6, 2) // a Monday
	flat := func(time.Time) int64 { return 1_000_000 }
	weekly := func(d time.Time) int64 {
		return []int64{200_000, 1_200_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_600_000}[d.Weekday()]
	}
	pension := func(d time.Time) int64 {
		if d.Day() == 5 {
			return 3_000_000
		}
		return 1_000_000
	}
	for _, c := range []struct {
		name          string
		in            Input
		want          []int64 // Expected per day, today first
		wantRemaining int64   // of today
		wantShort     time.Time
		wantSuggested int64
		wantPeaks     []int
	}{
		{name: "no history", in: Input{Today: today, Balance: 5_000_000},
			want: []int64{0, 0, 0, 0, 0, 0, 0}},
		{name: "flat", in: Input{History: history(today, 90, flat), Today: today, Balance: 2_500_000},
			want:          []int64{1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000},
			wantRemaining: 1_000_000, wantShort: date(2025, 6, 4), wantSuggested: 6_000_000}, // 7M × 1.2 − 2.5M = 5.9M, up to 6M
		{name: "paid today already", in: Input{History: history(today, 90, flat), Today: today, PaidToday: 700_000, Balance: 10_000_000},
			want:          []int64{1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000},
			wantRemaining: 300_000}, // 6.3M × 1.2 = 7.56M < 10M: nothing to suggest
		{name: "weekly pattern", in: Input{History: history(today, 56, weekly), Today: today, Balance: 100_000_000},
			// Monday .. Sunday
			want: []int64{1_200_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_600_000, 200_000}, wantRemaining: 1_200_000},
		{name: "pension day", in: Input{History: history(today, 90, pension), Today: today, Balance: 4_000_000},
			// 2..8 June: the 5th is a pension day in each of March, April, May.
			want: []int64{1_000_000, 1_000_000, 1_000_000, 3_000_000, 1_000_000, 1_000_000, 1_000_000}, wantRemaining: 1_000_000,
			wantShort: date(2025, 6, 5), wantSuggested: 7_000_000, wantPeaks: []int{5}}, // 9M × 1.2 − 4M = 6.8M
		{name: "young post office", in: Input{History: history(today, 10, flat), Today: today, Balance: 0},
			want:          []int64{1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000},
			wantRemaining: 1_000_000, wantShort: today, wantSuggested: 9_000_000}, // 8.4M up to 9M
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res := Forecast(c.in, Settings{})
			if len(res.Days) != 7 {
				t.Fatalf("%d days", len(res.Days))
			}
			for i, d := range res.Days {
				if d.Expected != c.want[i] || !d.Date.Equal(today.AddDate(0, 0, i)) {
					t.Errorf("day %d (%s %s): expected %d, want %d", i, d.Date.Format(time.DateOnly), d.Weekday, d.Expected, c.want[i])
				}
				if d.Peak != (d.Date.Day() == 5 && len(c.wantPeaks) > 0) {
					t.Errorf("day %s: peak %v", d.Date.Format(time.DateOnly), d.Peak)
				}
			}
			if res.Days[0].Remaining != c.wantRemaining {
				t.Errorf("today's remaining %d, want %d", res.Days[0].Remaining, c.wantRemaining)
			}
			if !res.RunsShort.Equal(c.wantShort) {
				t.Errorf("runs short %v, want %v", res.RunsShort, c.wantShort)
			}
			if res.Suggested != c.wantSuggested {
				t.Errorf("suggested %d, want %d", res.Suggested, c.wantSuggested)
			}
			var peaks []int
			for _, p := range res.Peaks {
				peaks = append(peaks, p.DayOfMonth)
			}
			if len(peaks) != len(c.wantPeaks) || (len(peaks) > 0 && peaks[0] != c.wantPeaks[0]) {
				t.Errorf("peaks %+v, want days %v", res.Peaks, c.wantPeaks)
			}
			till := c.in.Balance
			for _, d := range res.Days {
				till -= d.Remaining
				if d.Till != till {
					t.Errorf("%s: projected till %d, want %d", d.Date.Format(time.DateOnly), d.Till, till)
				}
			}
			if !strings.Contains(res.Method, "weekday") || !strings.Contains(res.Method, "28") {
				t.Errorf("method %q", res.Method)
			}
		})
	}
}

// TestForecastIgnoresTheFuture: days on or after today in the history (a
// caller passing today's partial payouts) do not change the forecast.
func TestForecastIgnoresTheFuture(t *testing.T) {
	t.Parallel()
	today := date(2025, 6, 2)
	h := history(today, 30, func(time.Time) int64 { return 1_000_000 })
	a := Forecast(Input{History: h, Today: today}, Settings{})
	h = append(h, Day{Date: today, Paid: 50_000_000}, Day{Date: today.AddDate(0, 0, 1), Paid: 50_000_000})
	b := Forecast(Input{History: h, Today: today}, Settings{})
	if a.Total != b.Total || a.Total != 7_000_000 {
		t.Fatalf("totals %d and %d, want 7000000", a.Total, b.Total)
	}
}

// TestBacktestBeatsNaive: on a generated 90-day history with weekly and
// monthly patterns, the forecast's error is below the "same as last week"
// forecast's (bench/cmd/forecast prints the same figures).
func TestBacktestBeatsNaive(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3, 42} {
		h := Synthetic(seed, date(2025, 3, 1), 90)
		bt := RunBacktest(h, 35, 1, Settings{})
		t.Logf("seed %d: %d origins, %d days: forecast MAPE %.1f%%, naive %.1f%%", seed, bt.Origins, bt.Days, bt.MAPE, bt.NaiveMAPE)
		if bt.Origins < 40 || bt.Days < 280 {
			t.Fatalf("backtest too small: %+v", bt)
		}
		if !(bt.MAPE < bt.NaiveMAPE) {
			t.Errorf("seed %d: forecast MAPE %.1f%% does not beat naive %.1f%%", seed, bt.MAPE, bt.NaiveMAPE)
		}
	}
}

// TestPure: the package imports nothing of this module and nothing that
// reaches outside the process.
func TestPure(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, ".") || strings.HasPrefix(imp, "net") || imp == "os" || imp == "database/sql" {
			t.Errorf("forecast imports %s", imp)
		}
	}
}
