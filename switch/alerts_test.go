package atmswitch_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	atmswitch "github.com/softatm/softatm/switch"
)

// alertRules is the operator's alert rule file.
const alertRules = "../deploy/prometheus/alerts.yml"

var (
	exprRe     = regexp.MustCompile(`(?m)^\s*expr:\s*(.+)$`)
	alertRe    = regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`)
	selectorRe = regexp.MustCompile(`(softatm_[a-z0-9_]+)(?:\{([^}]*)\})?`)
	matcherRe  = regexp.MustCompile(`([a-z_]+)\s*(=~|=)\s*"([^"]*)"`)
)

// TestAlertRulesNameExportedMetrics: every alert has an expression, and
// every metric and label value the expressions select is one the switch
// exports, so that a renamed metric cannot silence an alert. The numeric
// guessing alert exists: it replaces the switch-wide lockout.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	alerts, exprs := alertRe.FindAllStringSubmatch(text, -1), exprRe.FindAllStringSubmatch(text, -1)
	if len(alerts) == 0 || len(alerts) != len(exprs) {
		t.Fatalf("%d alerts and %d expressions in %s", len(alerts), len(exprs), alertRules)
	}

	// What the switch exports: families and, per family, label=value pairs.
	families, err := atmswitch.NewMetrics(nil).Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]map[string]bool{}
	for _, f := range families {
		pairs := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				pairs[l.GetName()+"="+l.GetValue()] = true
			}
		}
		exported[f.GetName()] = pairs
	}

	seen := map[string]bool{}
	for _, e := range exprs {
		for _, sel := range selectorRe.FindAllStringSubmatch(e[1], -1) {
			name, matchers := sel[1], sel[2]
			seen[name] = true
			pairs, ok := exported[name]
			if !ok {
				t.Errorf("expression %q names %s, which the switch does not export", e[1], name)
				continue
			}
			for _, m := range matcherRe.FindAllStringSubmatch(matchers, -1) {
				label, op, value := m[1], m[2], m[3]
				values := []string{value}
				if op == "=~" {
					values = strings.Split(value, "|")
				}
				for _, v := range values {
					if !pairs[label+"="+v] {
						t.Errorf("expression %q selects %s{%s=%q}, which the switch does not export", e[1], name, label, v)
					}
				}
			}
		}
	}
	for _, want := range []string{"softatm_numeric_failures_total", "softatm_numeric_refusals_total", "softatm_numeric_codes_blocked_total",
		"softatm_outbox_exceptions_total"} {
		if !seen[want] {
			t.Errorf("no alert on %s", want)
		}
	}
}

// TestNumericMetricsLint: the numeric metrics pass promlint (what
// `promtool check metrics` runs).
func TestNumericMetricsLint(t *testing.T) {
	t.Parallel()
	problems, err := testutil.GatherAndLint(atmswitch.NewMetrics(nil).Registry,
		"softatm_numeric_failures_total", "softatm_numeric_refusals_total", "softatm_numeric_codes_blocked_total",
		"softatm_outbox_exceptions_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
