package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrape reads the switch's /metrics and returns its samples by name and
// labels as written (`name{label="value"}`).
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// committerFigures summarises the ledger committer's counters over a run.
// With batching off each caller runs its own transaction, so busy time
// overlaps and is not a utilisation.
func committerFigures(before, after map[string]float64, elapsed time.Duration, batchingOff bool) string {
	const l = `{committer="ledger"}`
	d := func(name string) float64 { return after[name] - before[name] }
	batches := d("softatm_ledger_batches_total" + l)
	if batches <= 0 {
		return ""
	}
	busy := fmt.Sprintf("busy %.0f%% of the time", 100*d("softatm_ledger_committer_busy_seconds_total"+l)/elapsed.Seconds())
	units := d("softatm_ledger_batch_units_total"+l) / batches
	if batchingOff {
		busy = "no batching (each caller runs its own transaction)"
	}
	return fmt.Sprintf("%.0f batches, %.1f units per batch, %s, %.0f transaction re-runs",
		batches, units, busy, d("softatm_ledger_retries_total"))
}
