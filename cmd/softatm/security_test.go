package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softatm/softatm/switch/auth"
	"github.com/softatm/softatm/switch/code"
)

// get fetches url and returns the status and the body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestMetricsNotOnPublicListener: /metrics and the profiler answer only on
// the admin listener; the public one answers 404 for them.
func TestMetricsNotOnPublicListener(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	for _, tc := range []struct {
		base, path string
		status     int
	}{
		{s.URL, "/metrics", http.StatusNotFound},
		{s.URL, "/debug/pprof/", http.StatusNotFound},
		{s.URL, "/debug/pprof/heap", http.StatusNotFound},
		{s.URL, "/debug/pprof/cmdline", http.StatusNotFound},
		{s.AdminURL, "/metrics", http.StatusOK},
		{s.AdminURL, "/debug/pprof/", http.StatusOK},
		{s.AdminURL, "/debug/pprof/heap", http.StatusOK},
		// The command line may carry -secret: not served anywhere.
		{s.AdminURL, "/debug/pprof/cmdline", http.StatusNotFound},
		// The admin listener is not a second door to the API.
		{s.AdminURL, "/v1/withdrawals/00000000-0000-0000-0000-000000000000", http.StatusNotFound},
	} {
		if status, body := get(t, tc.base+tc.path); status != tc.status {
			t.Errorf("%s%s: %d, want %d (%.80s)", tc.base, tc.path, status, tc.status, body)
		}
	}
	// The public listener's 404 is in the API's one error shape.
	if _, body := get(t, s.URL+"/metrics"); !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("public 404 body %q is not the JSON error", body)
	}
}

// TestPublicURLSecureCookieAndHSTS: behind a TLS proxy (-public-url
// https://...) the session cookie is Secure and every answer carries HSTS;
// without it, or with an http:// URL, neither (HSTS on a plain-HTTP
// deployment would lock browsers out of it).
func TestPublicURLSecureCookieAndHSTS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		publicURL string
		secure    bool
	}{
		{"", false}, // an http:// URL is the same: see TestPublicURLScheme
		{"https://atm.example.vn", true},
	} {
		t.Run(tc.publicURL, func(t *testing.T) {
			t.Parallel()
			s := startSystem(t, func(c *ServeConfig) { c.PublicURL = tc.publicURL })
			body := strings.NewReader(`{"username":"teller1","password":"teller1-demo"}`)
			resp, err := http.Post(s.URL+"/v1/staff/login", "application/json", body)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			var cookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == "softatm_session" {
					cookie = c
				}
			}
			if cookie == nil || cookie.Secure != tc.secure || !cookie.HttpOnly {
				t.Fatalf("session cookie %v, want Secure=%v and HttpOnly", cookie, tc.secure)
			}
			health, err := http.Get(s.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			health.Body.Close()
			for _, h := range []http.Header{resp.Header, health.Header} {
				hsts := h.Get("Strict-Transport-Security")
				if tc.secure && hsts != "max-age=31536000" || !tc.secure && hsts != "" {
					t.Fatalf("Strict-Transport-Security %q, want it only behind https", hsts)
				}
			}
		})
	}
}

// TestPublicURLScheme: only an https:// public URL turns on the Secure
// cookie and HSTS; a URL serve cannot read is refused at start.
func TestPublicURLScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url         string
		https, isOK bool
	}{
		{"", false, true},
		{"http://atm.example.vn", false, true},
		{"https://atm.example.vn", true, true},
		{"HTTPS://atm.example.vn:8443/", true, true},
		{"atm.example.vn", false, false},
		{"https://", false, false},
		{"ftp://atm.example.vn", false, false},
	} {
		c := ServeConfig{PublicURL: tc.url}
		https, err := c.https()
		if https != tc.https || (err == nil) != tc.isOK {
			t.Errorf("%q: https=%v err=%v, want https=%v ok=%v", tc.url, https, err, tc.https, tc.isOK)
		}
	}
}

// TestSigningSeedsSealed: the running switch keeps no private seed in clear
// (the demo fixtures' key, written in clear, was sealed when it started);
// a switch with another KEK, or none, refuses to start and says why; and a
// rotation of the KEK with `softatm keys rewrap` moves every seed to the new
// KEK, after which the old one is refused.
func TestSigningSeedsSealed(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := context.Background()
	kek, err := code.ParseKEK([]byte(testKEK))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := code.NewPGKeyStore(s.Pool, code.WithKEK(kek)).Keys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v, %v", keys, err)
	}
	for _, k := range keys {
		var clear, sealed []byte
		if err := s.Pool.QueryRow(ctx, `SELECT private_seed, sealed_seed FROM signing_keys WHERE id = $1`, k.ID).
			Scan(&clear, &sealed); err != nil {
			t.Fatal(err)
		}
		if clear != nil || sealed == nil || bytes.Contains(sealed, k.Private.Seed()[:8]) {
			t.Fatalf("key %s in the database: private_seed %x, sealed_seed %x; seed %x", k.ID, clear, sealed, k.Private.Seed())
		}
	}

	// Loading the demo fixtures again (a second `make run`) reads the keys
	// without the KEK.
	a := newAdmin(s.Pool, testSwitchSecret)
	err = a.loadDemo(ctx, s.Demo)
	a.close()
	if err != nil {
		t.Fatalf("loading the demo fixtures again over sealed keys: %v", err)
	}

	start := func(kekHex string) error {
		t.Helper()
		m := &Main{Log: s.Main.Log, Config: s.Main.Config}
		m.Config.Listen, m.Config.AdminListen, m.Config.KEK = "127.0.0.1:0", "127.0.0.1:0", kekHex
		err := m.Run(ctx)
		m.Close()
		return err
	}
	other := strings.Repeat("ab", 32)
	if err := start(other); !errors.Is(err, code.ErrWrongKEK) || !strings.Contains(err.Error(), kek.Fingerprint()) {
		t.Fatalf("start with a wrong KEK: %v, want a refusal naming kek %s", err, kek.Fingerprint())
	}
	if err := start(""); !errors.Is(err, code.ErrSealed) {
		t.Fatalf("start without a KEK: %v, want code.ErrSealed", err)
	}

	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.kek"), filepath.Join(dir, "new.kek")
	if err := os.WriteFile(oldFile, []byte(testKEK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := s.Main.Config.DatabaseURL
	for _, args := range [][]string{
		{"new-kek", newFile},
		{"rewrap", "-database", db, "-old-key-file", oldFile, "-key-file", newFile},
		{"rewrap", "-database", db, "-old-key-file", oldFile, "-key-file", newFile}, // nothing left to do
		{"list", "-database", db}, // no KEK needed to list
	} {
		if err := runKeys(ctx, args); err != nil {
			t.Fatalf("softatm keys %v: %v", args, err)
		}
	}
	if err := runKeys(ctx, []string{"new-kek", newFile}); err == nil {
		t.Fatal("keys new-kek overwrote a key file")
	}
	text, err := os.ReadFile(newFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := start(strings.TrimSpace(string(text))); err != nil {
		t.Fatalf("start with the new KEK: %v", err)
	}
	if err := start(testKEK); !errors.Is(err, code.ErrWrongKEK) {
		t.Fatalf("start with the old KEK after rewrap: %v, want code.ErrWrongKEK", err)
	}
}

// TestTrustedProxies: behind a proxy named by -trusted-proxies, failed
// logins slow the client X-Forwarded-For names, not every client of the
// proxy; a client behind the same proxy logs in while the attacker waits.
// Without the setting both would share the proxy's address.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *ServeConfig) { c.TrustedProxies = "127.0.0.1" })
	login := func(from, pass string) (int, string) {
		t.Helper()
		st, raw := s.call(t, nil, "POST", "/v1/staff/login", map[string]string{"X-Forwarded-For": from},
			map[string]string{"username": "teller1", "password": pass}, nil)
		return st, string(raw)
	}
	// Wrong passwords until the attacker is slowed (a 429), then at once
	// the other client: a delay lasts a second or more, so without the
	// setting the other client, sharing the proxy's address, would be
	// inside it. (Counting attempts instead of waiting for the 429 made
	// the test depend on how long a login takes under -race.)
	slowed := false
	for range 4 * auth.DefaultLoginFreeFailures {
		if st, _ := login("198.51.100.7", "wrong-password-42"); st == http.StatusTooManyRequests {
			slowed = true
			break
		}
	}
	if !slowed {
		t.Fatal("the attacker's failed logins were never slowed")
	}
	if st, raw := login("198.51.100.8", "teller1-demo"); st != http.StatusOK {
		t.Fatalf("another client behind the proxy: %d %s, want 200", st, raw)
	}
}

func TestTrustedProxiesRefusesGarbage(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"10.0.0.0/8, 127.0.0.1", "::1", ""} {
		if _, err := (&ServeConfig{TrustedProxies: v}).proxies(); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
	for _, v := range []string{"proxy.local", "10.0.0.0/33", "10.0.0.1,,nope"} {
		if _, err := (&ServeConfig{TrustedProxies: v}).proxies(); err == nil || !strings.Contains(err.Error(), "-trusted-proxies") {
			t.Errorf("%q: %v, want a -trusted-proxies error", v, err)
		}
	}
}
