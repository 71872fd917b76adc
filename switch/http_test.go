package atmswitch_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/auth"
	"github.com/softatm/softatm/switch/idem"
)

// TestOutcomeOfEveryLayer sends requests through the middleware chain serve
// wires (Instrument, then authentication, then idempotency, then the
// handler) and checks that each answer is counted with the code it carries,
// whichever layer refused it. The refusals here need no database: they
// happen before authentication or idempotency would read one.
func TestOutcomeOfEveryLayer(t *testing.T) {
	t.Parallel()
	const maxBody = 1024
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := atmswitch.NewMetrics(nil)
	authn := auth.New(nil, auth.WithLogger(log))
	idems := idem.New(nil, idem.WithMaxBodyBytes(maxBody), idem.WithLogger(log))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("conflict") {
			softatm.WriteError(w, r, log, softatm.Errorf(softatm.EConflict, "no"))
			return
		}
		atmswitch.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// asClient stands for a RequireBankClient that accepted the caller.
	asClient := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(auth.WithBankClient(r.Context(), auth.BankClient{ID: "mb-app", BankCode: "MB"})))
		})
	}
	mux := http.NewServeMux()
	route := func(pattern string, h http.Handler) { mux.Handle(pattern, m.Instrument(pattern, h)) }
	route("POST /bank", authn.RequireBankClient(idems.Middleware(auth.BankClientScope)(handler)))
	route("POST /staff", authn.RequireStaff(auth.RoleTeller)(handler))
	route("POST /idem", asClient(idems.Middleware(auth.BankClientScope)(handler)))
	route("GET /plain", asClient(idems.Middleware(auth.BankClientScope)(handler)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name, method, path, key, body string
		status                        int
		outcome                       string
	}{
		{"bank client without credentials", "POST", "/bank", "k1", "{}", http.StatusUnauthorized, softatm.EUnauthorized},
		{"staff without a session", "POST", "/staff", "k1", "{}", http.StatusUnauthorized, softatm.EUnauthorized},
		{"no idempotency key", "POST", "/idem", "", "{}", http.StatusBadRequest, softatm.EInvalid},
		{"body over the cap", "POST", "/idem", "k2", strings.Repeat("x", maxBody+1), http.StatusRequestEntityTooLarge, softatm.ETooLarge},
		{"handler's own error", "GET", "/plain?conflict", "", "", http.StatusConflict, softatm.EConflict},
		{"success", "GET", "/plain", "", "", http.StatusOK, "ok"},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.key != "" {
			req.Header.Set(idem.HeaderKey, tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, resp.StatusCode, tc.status, raw)
		}
		route := tc.method + " " + strings.SplitN(tc.path, "?", 2)[0]
		if n := requestsCounted(t, m, route, tc.outcome); n != 1 {
			t.Errorf("%s: %s counted %v times with outcome %q, want once; counts: %v",
				tc.name, route, n, tc.outcome, requestCounts(t, m, route))
		}
	}
}

// requestCounts returns softatm_http_requests_total of route by outcome.
func requestCounts(t *testing.T, m *atmswitch.Metrics, route string) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "softatm_http_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route {
				counts[labels["outcome"]] += s.GetCounter().GetValue()
			}
		}
	}
	return counts
}

func requestsCounted(t *testing.T, m *atmswitch.Metrics, route, outcome string) float64 {
	t.Helper()
	return requestCounts(t, m, route)[outcome]
}

// TestViewMasksAccount: the bank's app and the kiosk see an account through
// iso.Mask, the one masker of the switch, which leaves only the last four
// characters and hides a short number entirely.
func TestViewMasksAccount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ account, want string }{
		{"9704000000000011", "************0011"},
		{"12345", "*2345"},
		{"1234", "****"},
		{"123", "***"},
		{"", ""},
	} {
		got := atmswitch.View(atmswitch.Withdrawal{Account: tc.account}).Account
		if got != tc.want {
			t.Errorf("View of account %q shows %q, want %q", tc.account, got, tc.want)
		}
		if got != iso.Mask(tc.account) {
			t.Errorf("View of account %q shows %q, iso.Mask says %q", tc.account, got, iso.Mask(tc.account))
		}
	}
}
