// Command forecast backtests the cash forecast (ledger/forecast) on
// generated 90-day post office histories with weekly and monthly patterns
// (forecast.Synthetic: a market Saturday, a quiet Sunday, pensions on the
// 5th, salaries on the 10th, ±15% noise), against the naive "same as last
// week" forecast, and prints the mean absolute percentage error (MAPE) of
// each. From every origin at least -min-history days into a history, the
// next 7 days are forecast from the days before the origin alone. It is
// pure computation (no database), a few hundred milliseconds.
//
//	go run ./bench/cmd/forecast
//	go run ./bench/cmd/forecast -seeds 20 -days 90 -min-history 35
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/softatm/softatm/ledger/forecast"
)

func main() {
	seeds := flag.Int("seeds", 10, "generated histories (post offices), seeds 1..N")
	days := flag.Int("days", 90, "days of each generated history")
	minHistory := flag.Int("min-history", 35, "days of history before the first forecast origin")
	step := flag.Int("step", 1, "days between forecast origins")
	flag.Parse()

	start := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	fmt.Printf("cash forecast backtest: %d generated histories of %d days from %s, origins from day %d every %d day(s), horizon %d days\n",
		*seeds, *days, start.Format(time.DateOnly), *minHistory, *step, forecast.Defaults.Horizon)
	fmt.Printf("method: %s\n\n", forecast.Method(forecast.Settings{}))
	fmt.Printf("%6s %8s %6s %14s %12s\n", "seed", "origins", "days", "forecast MAPE", "naive MAPE")
	var sumF, sumN float64
	var n int
	worse := 0
	for seed := 1; seed <= *seeds; seed++ {
		h := forecast.Synthetic(uint64(seed), start, *days)
		bt := forecast.RunBacktest(h, *minHistory, *step, forecast.Settings{})
		fmt.Printf("%6d %8d %6d %13.1f%% %11.1f%%\n", seed, bt.Origins, bt.Days, bt.MAPE, bt.NaiveMAPE)
		sumF += bt.MAPE * float64(bt.Days)
		sumN += bt.NaiveMAPE * float64(bt.Days)
		n += bt.Days
		if bt.MAPE >= bt.NaiveMAPE {
			worse++
		}
	}
	if n == 0 {
		fmt.Println("nothing to score: the histories are shorter than min-history + horizon")
		os.Exit(1)
	}
	fmt.Printf("%6s %8s %6d %13.1f%% %11.1f%%\n", "all", "", n, sumF/float64(n), sumN/float64(n))
	if worse > 0 {
		fmt.Printf("the forecast did not beat the naive one on %d of %d histories\n", worse, *seeds)
		os.Exit(1)
	}
	fmt.Println("the forecast beats the naive one on every history")
}
