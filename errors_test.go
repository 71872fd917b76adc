package softatm

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	secret := errors.New("pq: connection refused on 10.0.0.1")
	for _, tc := range []struct {
		name    string
		err     error
		code    string
		message string
	}{
		{"nil", nil, "", "internal error"},
		{"plain", secret, EInternal, "internal error"},
		{"coded", Errorf(ECodeExpired, "code expired at %s", "10:00"), ECodeExpired, "code expired at 10:00"},
		{"wrapped", fmt.Errorf("scan: %w", Wrap(EUnavailable, "try again", secret)), EUnavailable, "try again"},
	} {
		if got := ErrorCode(tc.err); got != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
		}
		if got := ErrorMessage(tc.err); got != tc.message {
			t.Errorf("%s: message %q, want %q", tc.name, got, tc.message)
		}
	}
}
