package softatm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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

func TestWriteError(t *testing.T) {
	t.Parallel()
	secret := errors.New("pq: connection refused on 10.0.0.1")
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		code    string
		message string
		logged  bool
	}{
		{"refusal", Errorf(EUnauthorized, "not logged in"), http.StatusUnauthorized, EUnauthorized, "not logged in", false},
		{"too large", Errorf(ETooLarge, "request body larger than 1024 bytes"), http.StatusRequestEntityTooLarge, ETooLarge,
			"request body larger than 1024 bytes", false},
		{"wrapped refusal", fmt.Errorf("scan: %w", Errorf(ECodeExpired, "expired")), http.StatusGone, ECodeExpired, "expired", false},
		{"unavailable", Wrap(EUnavailable, "try again", secret), http.StatusServiceUnavailable, EUnavailable, "try again", true},
		{"plain error", secret, http.StatusInternalServerError, EInternal, "internal error", true},
		// An internal error's message is not shown either: it may name an
		// account or a table.
		{"internal", Errorf(EInternal, "ledger invariant: account po:LS-001:till would go negative"),
			http.StatusInternalServerError, EInternal, "internal error", true},
		// A code the table does not know is a bug, answered as internal.
		{"unknown code", Errorf("made_up", "secret detail"), http.StatusInternalServerError, EInternal, "internal error", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			ctx, outcome := WithOutcome(context.Background())
			r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/x", nil)
			rec := httptest.NewRecorder()
			WriteError(rec, r, log, tc.err)

			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var body ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Error.Code != tc.code || body.Error.Message != tc.message {
				t.Errorf("body %+v, want %s %q", body.Error, tc.code, tc.message)
			}
			if strings.Contains(rec.Body.String(), "10.0.0.1") || strings.Contains(rec.Body.String(), "secret") {
				t.Errorf("body leaks the cause: %s", rec.Body)
			}
			if got := outcome.Label(); got != tc.code {
				t.Errorf("outcome %q, want %q", got, tc.code)
			}
			if logged := logs.Len() > 0; logged != tc.logged {
				t.Errorf("logged %v, want %v: %s", logged, tc.logged, logs.String())
			}
			if tc.err == secret && !strings.Contains(logs.String(), "10.0.0.1") {
				t.Errorf("the cause is not in the log: %s", logs.String())
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	_, o := WithOutcome(context.Background())
	if o.Label() != "ok" {
		t.Fatalf("fresh outcome %q, want ok", o.Label())
	}
	// A request without an Outcome (no instrumenting middleware) is still
	// answered.
	rec := httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), nil, Errorf(ENotFound, "no"))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
}

// TestEveryCodeHasAStatus reads the code constants of errors.go, so that a
// code added there without a row in httpStatus (which WriteError would
// answer as internal) fails here.
func TestEveryCodeHasAStatus(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				code, _ := strconv.Unquote(lit.Value)
				if other, dup := seen[code]; dup {
					t.Errorf("%s and %s are both %q", name.Name, other, code)
				}
				seen[code] = name.Name
				if _, ok := httpStatus[code]; !ok {
					t.Errorf("%s (%q) has no HTTP status in httpStatus", name.Name, code)
				}
			}
		}
	}
	if len(seen) != len(httpStatus) {
		t.Errorf("errors.go declares %d codes, httpStatus maps %d", len(seen), len(httpStatus))
	}
}

func TestMuxRefusalsAreJSON(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/x", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := WithJSONMuxErrors(mux)
	for _, tc := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/v1/x", http.StatusTeapot, "", ""},
		{"POST", "/v1/x", http.StatusMethodNotAllowed, EMethod, "GET, HEAD"},
		{"GET", "/nope", http.StatusNotFound, ENotFound, ""},
		{"GET", "/v1/../v1/x", http.StatusTemporaryRedirect, "", ""}, // the mux cleans the path
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: status %d Allow %q, want %d %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), tc.status, tc.allow)
		}
		if tc.code == "" {
			continue
		}
		var b ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code != tc.code {
			t.Errorf("%s %s: body %q, want code %s", tc.method, tc.path, rec.Body.String(), tc.code)
		}
	}
}
