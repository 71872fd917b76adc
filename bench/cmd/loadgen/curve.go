package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// curveLevels are the fractions of the saturated rate a -curve runs at:
// the 20, 40, 60, 80 and 90%, and 70%, where its latency goal is.
var curveLevels = []float64{0.2, 0.4, 0.6, 0.7, 0.8, 0.9}

// Knee criteria: the first level whose confirm p99 is more than
// kneeP99Factor times the lowest level's, or that completes less than
// kneeRateShare of its target rate, is past the knee.
const (
	kneeP99Factor = 2.0
	kneeRateShare = 0.95
	curveWarmup   = 2 * time.Second
)

// runCurve runs fixed-rate loads at curveLevels of the saturated rate sat
// with many clients (so a start seldom waits for a free client: an open
// loop), and prints p50/p99 per call at each level and where the knee is.
func runCurve(ctx context.Context, out io.Writer, w *world, o opts, sat float64) error {
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	type level struct {
		frac, target, got float64
		res               loadResult
	}
	var levels []level
	for _, f := range curveLevels {
		lo := o
		lo.rate, lo.duration, lo.warmup, lo.clients = f*sat, o.curveDuration, curveWarmup, o.curveClients
		res, err := measureLoad(ctx, w, lo)
		if err != nil {
			return err
		}
		levels = append(levels, level{frac: f, target: lo.rate, got: float64(res.completed) / res.window.Seconds(), res: res})
	}
	p("## open-loop curve (saturated closed-loop rate %.1f/s; %d clients, %s per level after %s warm-up)", sat, o.curveClients, o.curveDuration, curveWarmup)
	p("")
	p("| load | target/s | completed/s | starts missed | create p50 / p99 ms | scan p50 / p99 ms | confirm p50 / p99 ms | server CPU ms per withdrawal |")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	knee := -1
	var base time.Duration
	for i, lv := range levels {
		q := func(op string) string {
			l := lv.res.lat[op]
			return ms(quantile(l, .5)) + " / " + ms(quantile(l, .99))
		}
		var server float64
		for _, c := range lv.res.cpu {
			if c.server {
				server += c.seconds
			}
		}
		cpu := "—"
		if lv.res.flowsAll > 0 {
			cpu = fmt.Sprintf("%.2f", 1000*server/float64(lv.res.flowsAll))
		}
		p("| %.0f%% | %.1f | %.1f | %d | %s | %s | %s | %s |", 100*lv.frac, lv.target, lv.got, lv.res.missed, q("create"), q("scan"), q("confirm"), cpu)
		p99 := quantile(lv.res.lat["confirm"], .99)
		if i == 0 {
			base = p99
		}
		if knee < 0 && i > 0 && (float64(p99) > kneeP99Factor*float64(base) || lv.got < kneeRateShare*lv.target) {
			knee = i
		}
	}
	p("")
	switch {
	case knee < 0:
		p("knee: not reached up to %.0f%% (confirm p99 within %.0f× of the %.0f%% level's, every level at >= %.0f%% of its target rate)",
			100*levels[len(levels)-1].frac, kneeP99Factor, 100*levels[0].frac, 100*kneeRateShare)
	default:
		p("knee: between %.0f%% and %.0f%% of saturation (at %.0f%% confirm p99 > %.0f× the %.0f%% level's, or completed < %.0f%% of target)",
			100*levels[knee-1].frac, 100*levels[knee].frac, 100*levels[knee].frac, kneeP99Factor, 100*levels[0].frac, 100*kneeRateShare)
	}
	p("")
	return nil
}
