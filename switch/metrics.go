package atmswitch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the switch's Prometheus collectors, on a registry of our own.
// Label values are bounded: routes are patterns, outcomes are error codes,
// states and message kinds are enums.
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	transitions   *prometheus.CounterVec
	paidAmount    prometheus.Counter
	redisFallback prometheus.Counter
	outboxSent    *prometheus.CounterVec
	outboxDepth   prometheus.Gauge
	outboxOldest  prometheus.Gauge
}

// NewMetrics registers the collectors on reg (a new registry when nil).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_http_requests_total", Help: "HTTP requests by route and outcome (error code or ok).",
		}, []string{"route", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "softatm_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_withdrawal_transitions_total", Help: "Withdrawals entering each state.",
		}, []string{"state"}),
		paidAmount: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softatm_paid_amount_dong_total", Help: "Cash paid out, in dong.",
		}),
		redisFallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softatm_redis_fallbacks_total", Help: "Scans that went on without the Redis fast gate.",
		}),
		outboxSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softatm_outbox_sends_total", Help: "Advices and reversals sent, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "softatm_outbox_pending", Help: "Messages waiting to be sent to the bank.",
		}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "softatm_outbox_oldest_age_seconds", Help: "Age of the oldest message waiting to be sent.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.transitions, m.paidAmount, m.redisFallback,
		m.outboxSent, m.outboxDepth, m.outboxOldest)
	return m
}

func (m *Metrics) transition(s State) { m.transitions.WithLabelValues(string(s)).Inc() }
