package atmswitch

// SetNumericSource makes s draw numeric codes from next (tests).
func SetNumericSource(s *Service, next func() (string, error)) { s.numeric = next }
