package softatm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestDatabaseUnavailable: a lost primary answers 503 with Retry-After and
// the stable code database_unavailable; the database's own answers (a
// constraint, a serialization failure) and the caller's deadline do not.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		err        error
		code       string
		status     int
		retryAfter string
	}{
		{"connection refused", fmt.Errorf("reading: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}),
			EDatabaseUnavailable, 503, "2"},
		{"closed during COMMIT", fmt.Errorf("commit: %w", io.ErrUnexpectedEOF), EDatabaseUnavailable, 503, "2"},
		{"admin shutdown", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, EDatabaseUnavailable, 503, "2"},
		{"read-only standby", &pgconn.PgError{Severity: "ERROR", Code: "25006"}, EDatabaseUnavailable, 503, "2"},
		{"retries ran out on a lost primary", Wrap(EUnavailable, "the database is busy, try again",
			&pgconn.PgError{Severity: "FATAL", Code: "57P03"}), EDatabaseUnavailable, 503, "2"},
		{"busy", Errorf(EUnavailable, "busy"), EUnavailable, 503, "1"},
		{"unique violation", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, EInternal, 500, ""},
		{"serialization failure", &pgconn.PgError{Severity: "ERROR", Code: "40001"}, EInternal, 500, ""},
		{"caller's deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), EInternal, 500, ""},
		{"a refusal stays a refusal", Errorf(ECodeUsed, "used"), ECodeUsed, 409, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			WriteError(rec, httptest.NewRequest(http.MethodPost, "/v1/teller/confirm", nil), nil, tc.err)
			var b ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || b.Error.Code != tc.code || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Fatalf("got %d %s Retry-After %q, want %d %s %q", rec.Code, b.Error.Code,
					rec.Header().Get("Retry-After"), tc.status, tc.code, tc.retryAfter)
			}
			if tc.code == EDatabaseUnavailable && b.Error.Message != databaseUnavailableMessage {
				t.Fatalf("message %q", b.Error.Message)
			}
		})
	}
}
