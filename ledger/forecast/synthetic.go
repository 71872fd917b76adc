package forecast

import (
	"math"
	"math/rand/v2"
	"time"
)

// Synthetic returns a generated history of days business days from start,
// for backtests and demos: a base of 8,000,000 ₫ a day growing 0.1% a day,
// a weekly pattern (a market Saturday, a quiet Sunday), pension payouts on
// the 5th (×2.5) and salaries on the 10th (×1.8) of each month, and ±15%
// noise; deliveries every Monday bring the till back to a week's cash. The
// same seed gives the same history.
func Synthetic(seed uint64, start time.Time, days int) []Day {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	weekday := [7]float64{0.5, 1.2, 1.0, 0.9, 1.0, 1.1, 1.3} // Sunday first
	month := map[int]float64{5: 2.5, 10: 1.8}
	start = civil(start)
	out := make([]Day, days)
	for i := range out {
		d := start.AddDate(0, 0, i)
		v := 8_000_000 * math.Pow(1.001, float64(i)) * weekday[d.Weekday()]
		if f, ok := month[d.Day()]; ok {
			v *= f
		}
		v *= 1 + 0.15*(2*rng.Float64()-1)
		out[i] = Day{Date: d, Paid: int64(math.Round(v/10_000)) * 10_000}
		if d.Weekday() == time.Monday {
			out[i].Replenished = 60_000_000
		}
	}
	return out
}
