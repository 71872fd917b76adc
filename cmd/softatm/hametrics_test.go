package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger"
)

const (
	haAlertRules     = "../../deploy/prometheus/ha-alerts.yml"
	alertRulesFile   = "../../deploy/prometheus/alerts.yml"
	bankAlertRules   = "../../deploy/prometheus/bank-alerts.yml"
	alertRulesTests  = "../../deploy/prometheus/alerts_test.yml"
	prometheusConfig = "../../deploy/prometheus/prometheus.yml"
)

// TestPromtoolChecks runs promtool (Debian's prometheus package; `make
// deps` installs it) on the alert rules, their unit tests (alerts_test.yml:
// each alert fires on the series it is for and stays quiet otherwise) and
// the sample scrape configuration, which names every rule file.
func TestPromtoolChecks(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (make deps installs Debian's prometheus package): %v", err)
	}
	for _, args := range [][]string{
		{"check", "rules", haAlertRules, alertRulesFile, bankAlertRules},
		{"test", "rules", alertRulesTests},
		{"check", "config", prometheusConfig},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestHACollector reads a standalone PostgreSQL (a primary with no
// standby): reachable, no synchronous standby, no lag, timeline 1; and
// every softatm_ metric the HA alert rules name is one the switch exports
// (the collector and the commit lock's counters).
func TestHACollector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, localsrv.MustDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg := prometheus.NewRegistry()
	c := newHACollector(pool)
	reg.MustRegister(c)
	l := ledger.New(pool)
	t.Cleanup(l.Close)
	registerLockMetrics(reg, map[string]*ledger.Ledger{"ledger": l})

	for name, want := range map[string]float64{
		"softatm_db_primary_reachable": 1, "softatm_db_sync_standbys": 0,
		"softatm_db_replication_lag_bytes": 0, "softatm_db_timeline": 1,
	} {
		if got := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
			tmp := make(chan prometheus.Metric, 8)
			c.Collect(tmp)
			close(tmp)
			for m := range tmp {
				if regexp.MustCompile(`"` + name + `"`).MatchString(m.Desc().String()) {
					ch <- m
				}
			}
		})); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	raw, err := os.ReadFile(haAlertRules)
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, expr := range regexp.MustCompile(`(?m)^\s*expr:\s*(.+)$`).FindAllStringSubmatch(string(raw), -1) {
		named = append(named, regexp.MustCompile(`softatm_[a-z0-9_]+`).FindAllString(expr[1], -1)...)
	}
	if len(named) == 0 {
		t.Fatal("no softatm_ metric in the HA alert rules")
	}
	for _, n := range named {
		if !exported[n] {
			t.Errorf("%s names %s, which the switch does not export", haAlertRules, n)
		}
	}
}
