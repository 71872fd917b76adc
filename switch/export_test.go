package atmswitch

import "github.com/prometheus/client_golang/prometheus/testutil"

// SetNumericSource makes s draw numeric codes from next (tests).
func SetNumericSource(s *Service, next func() (string, error)) { s.numeric = next }

// OutboxExceptions is softatm_outbox_exceptions_total{kind} (tests).
func (m *Metrics) OutboxExceptions(kind string) float64 {
	return testutil.ToFloat64(m.outboxExceptions.WithLabelValues(kind))
}
