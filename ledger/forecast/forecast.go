// Package forecast predicts a post office's cash payouts for the coming
// days from its own history, the day its till is expected to run short,
// and a replenishment that would carry it through. It is pure: it takes
// the history and the till's balance as values and reads nothing; the
// finance API (teller) feeds it from the ledger.
//
// Method: a multiplicative profile fitted to the post office's own daily
// payouts,
//
//		expected(d) = level × weekday(d) × monthday(d)
//
//	  - weekday: each weekday's mean over the last WeekdayDays days divided
//	    by the mean of all of them (rural post offices see market days and
//	    quiet Sundays);
//	  - monthday: days of the month whose payouts stand PeakRatio or more
//	    above their weekday's profile in every month of the last MonthDays
//	    days (at least two months seen) are peak days, pension and salary
//	    days, with their own factor; every other day has 1;
//	  - level: the mean of the last LevelDays days with the weekday and
//	    peak-day effects divided out, so a trend is followed within weeks.
//
// Days missing from the history inside its span are days with no payout.
// The history starts at its first day: a post office younger than the
// windows is fitted on what it has. Amounts are rounded to Round.
//
// Decisions: no deliveries are assumed in the horizon (a replenishment
// booked later is in the next forecast's balance); the first forecast day
// is today, of which only what is not yet paid still leaves the till.
//
// This package must not import any other package of this module.
package forecast

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Day is one business day of a post office's history.
type Day struct {
	Date        time.Time // a civil date (the time of day is ignored)
	Paid        int64     // cash paid out to citizens
	Replenished int64     // cash delivered into the till
}

// Settings are the method's windows and thresholds.
type Settings struct {
	Horizon     int     // days forecast, today first (default 7)
	LevelDays   int     // window of the level (default 28)
	WeekdayDays int     // window of the weekday profile (default 56)
	MonthDays   int     // window in which peak days are looked for (default 90)
	PeakRatio   float64 // how far above its weekday's profile a day of the month must stand in every month to be a peak day (default 1.4)
	Buffer      float64 // safety margin on the suggested replenishment, as a fraction of the horizon's payouts (default 0.2)
	Round       int64   // expected amounts are rounded to this (default 10,000 ₫, the note step of a withdrawal)
	SuggestStep int64   // a suggested replenishment is rounded up to this (default 1,000,000 ₫: bundles of notes)
}

// Defaults are the settings used where a field is zero.
var Defaults = Settings{Horizon: 7, LevelDays: 28, WeekdayDays: 56, MonthDays: 90, PeakRatio: 1.4, Buffer: 0.2,
	Round: 10_000, SuggestStep: 1_000_000}

func (s Settings) withDefaults() Settings {
	d := Defaults
	if s.Horizon > 0 {
		d.Horizon = s.Horizon
	}
	if s.LevelDays > 0 {
		d.LevelDays = s.LevelDays
	}
	if s.WeekdayDays > 0 {
		d.WeekdayDays = s.WeekdayDays
	}
	if s.MonthDays > 0 {
		d.MonthDays = s.MonthDays
	}
	if s.PeakRatio > 0 {
		d.PeakRatio = s.PeakRatio
	}
	if s.Buffer > 0 {
		d.Buffer = s.Buffer
	}
	if s.Round > 0 {
		d.Round = s.Round
	}
	if s.SuggestStep > 0 {
		d.SuggestStep = s.SuggestStep
	}
	return d
}

// Input is what a forecast needs of one post office.
type Input struct {
	History   []Day     // its past business days, in any order; days on or after Today are ignored
	Today     time.Time // the first day forecast: the current business day
	PaidToday int64     // already paid out today
	Balance   int64     // the till's cash now
}

// DayForecast is one forecast day.
type DayForecast struct {
	Date      time.Time `json:"date"`
	Weekday   string    `json:"weekday"`
	Expected  int64     `json:"expected"`  // cash expected to be paid out on the whole day
	Remaining int64     `json:"remaining"` // of it, still to leave the till (today: Expected less what was paid)
	Peak      bool      `json:"peak"`      // a pension or salary day of the month, as seen in the history
	Till      int64     `json:"till"`      // the till's cash projected at the end of the day (below zero: short)
}

// Peak is a day of the month that stands out in the history.
type Peak struct {
	DayOfMonth int     `json:"day_of_month"`
	Factor     float64 `json:"factor"` // payouts on it relative to its weekday's profile
}

// Result is a post office's forecast.
type Result struct {
	Days  []DayForecast `json:"days"`
	Total int64         `json:"total"` // the horizon's Remaining, summed
	// RunsShort is the first day whose projected till is below zero; zero
	// when the till lasts the horizon.
	RunsShort time.Time `json:"runs_short,omitzero"`
	// Suggested is a replenishment that covers the horizon plus the
	// buffer (rounded up to SuggestStep); 0 when the till already does.
	Suggested   int64  `json:"suggested"`
	Peaks       []Peak `json:"peaks"`
	HistoryDays int    `json:"history_days"` // days of history the fit used
	Method      string `json:"method"`       // the method in one line
}

// civil returns t's calendar date at midnight UTC.
func civil(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// series is a history as consecutive days ending the day before today.
type series struct {
	start time.Time
	y     []float64
}

func (s series) date(i int) time.Time { return s.start.AddDate(0, 0, i) }

func newSeries(h []Day, today time.Time, maxDays int) series {
	today = civil(today)
	first := today
	byDate := map[time.Time]int64{}
	for _, d := range h {
		c := civil(d.Date)
		if !c.Before(today) {
			continue
		}
		byDate[c] += d.Paid
		if c.Before(first) {
			first = c
		}
	}
	if lim := today.AddDate(0, 0, -maxDays); first.Before(lim) {
		first = lim
	}
	n := int(today.Sub(first).Hours()/24 + 0.5)
	s := series{start: first, y: make([]float64, n)}
	for i := range s.y {
		s.y[i] = float64(byDate[s.date(i)])
	}
	return s
}

// model is a fitted profile.
type model struct {
	level   float64
	weekday [7]float64
	peaks   map[int]float64 // day of month -> factor
}

func (m model) factor(d time.Time) float64 {
	f := m.weekday[d.Weekday()]
	if p, ok := m.peaks[d.Day()]; ok {
		f *= p
	}
	return f
}

// weekdayProfile returns each weekday's mean over the last days of s,
// leaving out peak days, relative to the mean of the seven.
func weekdayProfile(s series, days int, peaks map[int]float64) [7]float64 {
	var sum [7]float64
	var n [7]int
	for i := max(0, len(s.y)-days); i < len(s.y); i++ {
		d := s.date(i)
		if _, ok := peaks[d.Day()]; ok {
			continue
		}
		sum[d.Weekday()] += s.y[i]
		n[d.Weekday()]++
	}
	var w [7]float64
	var total float64
	var seen int
	for k := range 7 {
		if n[k] > 0 {
			w[k] = sum[k] / float64(n[k])
			total += w[k]
			seen++
		}
	}
	if seen == 0 || total == 0 {
		return [7]float64{1, 1, 1, 1, 1, 1, 1}
	}
	mean := total / float64(seen)
	for k := range 7 {
		if n[k] == 0 {
			w[k] = 1 // a weekday never seen: assume an ordinary one
		} else {
			w[k] /= mean
		}
	}
	return w
}

// findPeaks returns the days of the month whose payouts stand ratio or more
// above the weekday profile (relative to the window's mean) in every month
// seen, at least two months; each with its mean factor.
func findPeaks(s series, w [7]float64, ratio float64) map[int]float64 {
	var total float64
	for _, v := range s.y {
		total += v
	}
	if len(s.y) == 0 || total == 0 {
		return nil
	}
	mean := total / float64(len(s.y))
	rs := map[int][]float64{}
	for i, v := range s.y {
		d := s.date(i)
		base := mean * w[d.Weekday()]
		if base <= 0 {
			continue
		}
		rs[d.Day()] = append(rs[d.Day()], v/base)
	}
	peaks := map[int]float64{}
	for dom, r := range rs {
		if len(r) < 2 {
			continue
		}
		lowest, sum := math.Inf(1), 0.0
		for _, x := range r {
			lowest = min(lowest, x)
			sum += x
		}
		if lowest >= ratio {
			peaks[dom] = sum / float64(len(r))
		}
	}
	return peaks
}

// fit fits the model to s.
func fit(s series, st Settings) model {
	// The weekday profile first with every day, then again without the
	// peak days it helped find, whose factors are then measured against it.
	w := weekdayProfile(s, st.WeekdayDays, nil)
	peaks := findPeaks(s, w, st.PeakRatio)
	w = weekdayProfile(s, st.WeekdayDays, peaks)
	if len(peaks) > 0 {
		var total float64
		var n int
		for i, v := range s.y {
			if _, ok := peaks[s.date(i).Day()]; !ok {
				total += v
				n++
			}
		}
		if n > 0 && total > 0 {
			mean := total / float64(n)
			for dom := range peaks {
				var sum float64
				var k int
				for i, v := range s.y {
					d := s.date(i)
					if d.Day() == dom && w[d.Weekday()] > 0 {
						sum += v / (mean * w[d.Weekday()])
						k++
					}
				}
				peaks[dom] = sum / float64(k)
			}
		}
	}
	m := model{weekday: w, peaks: peaks}
	var sum float64
	var n int
	for i := max(0, len(s.y)-st.LevelDays); i < len(s.y); i++ {
		if f := m.factor(s.date(i)); f > 0 {
			sum += s.y[i] / f
			n++
		}
	}
	if n > 0 {
		m.level = sum / float64(n)
	}
	return m
}

func round(v float64, step int64) int64 {
	if v <= 0 {
		return 0
	}
	return int64(math.Round(v/float64(step))) * step
}

// Forecast forecasts one post office.
func Forecast(in Input, st Settings) Result {
	st = st.withDefaults()
	today := civil(in.Today)
	s := newSeries(in.History, today, max(st.MonthDays, st.WeekdayDays, st.LevelDays))
	m := fit(s, st)
	res := Result{HistoryDays: len(s.y), Peaks: []Peak{}, Method: Method(st)}
	for dom, f := range m.peaks {
		res.Peaks = append(res.Peaks, Peak{DayOfMonth: dom, Factor: math.Round(f*100) / 100})
	}
	sort.Slice(res.Peaks, func(i, j int) bool { return res.Peaks[i].DayOfMonth < res.Peaks[j].DayOfMonth })
	till := in.Balance
	for i := range st.Horizon {
		d := today.AddDate(0, 0, i)
		_, peak := m.peaks[d.Day()]
		f := DayForecast{Date: d, Weekday: d.Weekday().String(), Expected: round(m.level*m.factor(d), st.Round), Peak: peak}
		f.Remaining = f.Expected
		if i == 0 {
			f.Remaining = max(0, f.Expected-in.PaidToday)
		}
		till -= f.Remaining
		f.Till = till
		if till < 0 && res.RunsShort.IsZero() {
			res.RunsShort = d
		}
		res.Total += f.Remaining
		res.Days = append(res.Days, f)
	}
	need := int64(math.Ceil(float64(res.Total)*(1+st.Buffer))) - in.Balance
	if need > 0 {
		res.Suggested = (need + st.SuggestStep - 1) / st.SuggestStep * st.SuggestStep
	}
	return res
}

// Method is the method in one line, in Vietnamese and English.
func Method(st Settings) string {
	st = st.withDefaults()
	return fmt.Sprintf("Mức chi TB %d ngày × hệ số thứ trong tuần (%d ngày) × hệ số ngày lương/hưu trong tháng (%d ngày) · "+
		"Level of the last %d days × weekday profile (last %d days) × pension/salary day-of-month factor (last %d days), from this post office's own payouts",
		st.LevelDays, st.WeekdayDays, st.MonthDays, st.LevelDays, st.WeekdayDays, st.MonthDays)
}

// Naive is the "same as last week" forecast of day d: what was paid seven
// days before it (0 if unknown).
func Naive(history []Day, d time.Time) int64 {
	want := civil(d).AddDate(0, 0, -7)
	var sum int64
	for _, h := range history {
		if civil(h.Date).Equal(want) {
			sum += h.Paid
		}
	}
	return sum
}

// Backtest is the accuracy of Forecast against Naive on history: from every
// origin at least minHistory days into it, each a step apart, the next
// Horizon days are forecast from the days before the origin alone and
// compared with what was paid. MAPE is the mean absolute percentage error
// over the forecast days with a payout (a day with none has no percentage).
type Backtest struct {
	Origins   int
	Days      int     // forecast days scored
	MAPE      float64 // of Forecast, in percent
	NaiveMAPE float64 // of Naive, in percent
}

// RunBacktest runs the backtest described at Backtest.
func RunBacktest(history []Day, minHistory, step int, st Settings) Backtest {
	st = st.withDefaults()
	if len(history) == 0 {
		return Backtest{}
	}
	sorted := append([]Day(nil), history...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Date.Before(sorted[j].Date) })
	actual := map[time.Time]int64{}
	for _, d := range sorted {
		actual[civil(d.Date)] += d.Paid
	}
	first, last := civil(sorted[0].Date), civil(sorted[len(sorted)-1].Date)
	var bt Backtest
	var errF, errN float64
	for origin := first.AddDate(0, 0, minHistory); !origin.AddDate(0, 0, st.Horizon-1).After(last); origin = origin.AddDate(0, 0, max(step, 1)) {
		bt.Origins++
		var past []Day
		for _, d := range sorted {
			if civil(d.Date).Before(origin) {
				past = append(past, d)
			}
		}
		res := Forecast(Input{History: past, Today: origin}, st)
		for _, f := range res.Days {
			a := actual[f.Date]
			if a == 0 {
				continue
			}
			bt.Days++
			errF += math.Abs(float64(f.Expected-a)) / float64(a)
			errN += math.Abs(float64(Naive(past, f.Date)-a)) / float64(a)
		}
	}
	if bt.Days > 0 {
		bt.MAPE = 100 * errF / float64(bt.Days)
		bt.NaiveMAPE = 100 * errN / float64(bt.Days)
	}
	return bt
}
