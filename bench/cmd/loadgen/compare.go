package main

import (
	"context"
	"fmt"
	"io"
	"slices"
)

// runCompare runs the load with o.softatm and with o.compare in turn,
// o.rounds times each, every run on a fresh system (PostgreSQL, Redis,
// simulator, switch), printing each run's report and then both side by
// side with their medians. This machine's speed swings from minute to
// minute: alternating the two binaries within one run is the fair
// comparison, and the median of a few rounds the figure to quote.
//
// Both binaries run on the schema this loadgen migrates: a binary from
// before a migration that drops what it reads is compared unfairly (or
// fails); compare such a binary with its own loadgen instead.
func runCompare(ctx context.Context, out io.Writer, o opts) error {
	bins := []string{o.softatm, o.compare}
	names := []string{o.softatm, o.compare}
	if names[0] == "" {
		names[0] = "this tree"
	}
	sums := make([][]runSummary, len(bins))
	for round := 1; round <= o.rounds; round++ {
		for i, bin := range bins {
			oo := o
			oo.softatm, oo.label = bin, fmt.Sprintf("%s, round %d of %d", names[i], round, o.rounds)
			s, err := runOnce(ctx, out, oo)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", names[i], round, err)
			}
			sums[i] = append(sums[i], s)
		}
	}
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	p("## compare: %d rounds, alternating", o.rounds)
	p("")
	p("| binary | round | completed/s | create / scan / confirm p99 ms | server CPU ms per withdrawal | durable commits a caller waits for |")
	p("| --- | ---: | ---: | --- | ---: | ---: |")
	for i := range bins {
		for r, s := range sums[i] {
			p("| %s | %d | %.1f | %.1f / %.1f / %.1f | %.2f | %.2f |", names[i], r+1, s.rate, s.p99[0], s.p99[1], s.p99[2], s.cpu, s.commits)
		}
		m := medianSummary(sums[i])
		p("| **%s** | **median** | **%.1f** | %.1f / %.1f / %.1f | %.2f | %.2f |", names[i], m.rate, m.p99[0], m.p99[1], m.p99[2], m.cpu, m.commits)
	}
	a, b := medianSummary(sums[0]), medianSummary(sums[1])
	if b.rate > 0 {
		p("")
		p("median completed/s: %s is %.2fx %s's", names[0], a.rate/b.rate, names[1])
	}
	return nil
}

// runSummary is what runCompare tabulates of one run.
type runSummary struct {
	rate    float64    // completed withdrawals per second
	p99     [3]float64 // create, scan, confirm, ms
	cpu     float64    // server CPU ms per withdrawal
	commits float64    // durable commits a caller waits for per withdrawal
}

// runOnce runs one closed-loop load on a fresh system and prints its
// report.
func runOnce(ctx context.Context, out io.Writer, o opts) (runSummary, error) {
	w, err := startWorld(ctx, o)
	if err != nil {
		return runSummary{}, err
	}
	defer w.Close()
	res, err := measureAndReport(ctx, out, w, o)
	if err != nil {
		return runSummary{}, err
	}
	s := runSummary{rate: float64(res.completed) / res.window.Seconds(), cpu: serverCPU(res), commits: durableCommits(res).waited}
	for i, op := range []string{"create", "scan", "confirm"} {
		s.p99[i] = float64(quantile(res.lat[op], .99).Microseconds()) / 1000
	}
	return s, nil
}

// medianSummary is each figure's median over the runs.
func medianSummary(runs []runSummary) runSummary {
	med := func(f func(runSummary) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	var m runSummary
	m.rate = med(func(r runSummary) float64 { return r.rate })
	for i := range m.p99 {
		m.p99[i] = med(func(r runSummary) float64 { return r.p99[i] })
	}
	m.cpu = med(func(r runSummary) float64 { return r.cpu })
	m.commits = med(func(r runSummary) float64 { return r.commits })
	return m
}
