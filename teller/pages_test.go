package teller

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func pagesServer(t *testing.T, demo bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	MountPages(mux, demo)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestPagesServedWithStrictHeaders(t *testing.T) {
	t.Parallel()
	srv := pagesServer(t, true)
	tests := []struct {
		path, mustContain, camera string
	}{
		{"/kiosk", `id="id-checked"`, "camera=(self)"},
		{"/finance", `id="recon-file"`, "camera=()"},
		{"/demo/app", `id="create"`, "camera=()"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			h := resp.Header
			if got := h.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "worker-src blob:", "script-src 'self'", "style-src 'self'",
				"frame-ancestors 'none'", "base-uri 'none'", "connect-src 'self'", "media-src 'self' blob: mediastream:"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("CSP allows unsafe code: %q", csp)
			}
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
				"Cache-Control":          "no-store",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := h.Get("Permissions-Policy"); !strings.Contains(got, tc.camera) {
				t.Errorf("Permissions-Policy %q lacks %q", got, tc.camera)
			}
			if !strings.Contains(body, tc.mustContain) {
				t.Errorf("page lacks %s", tc.mustContain)
			}
		})
	}
}

// The CSP forbids inline code, so the pages must hold none: no <style>, no
// style= attribute, no inline <script> body, no on*= handler, and every
// script or stylesheet comes from /assets/ on this origin.
func TestPagesHaveNoInlineCodeAndNoExternalURLs(t *testing.T) {
	t.Parallel()
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	handler := regexp.MustCompile(`\son[a-z]+\s*=`)
	srcs := regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	for _, f := range []string{"web/kiosk.html", "web/finance.html", "web/demo.html"} {
		b, err := webFS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(s, "<style") || strings.Contains(s, " style=") {
			t.Errorf("%s has inline style", f)
		}
		if inlineScript.MatchString(s) {
			t.Errorf("%s has an inline script", f)
		}
		if handler.MatchString(s) {
			t.Errorf("%s has an inline event handler", f)
		}
		for _, m := range srcs.FindAllStringSubmatch(s, -1) {
			u := m[1]
			if u == "#" {
				continue
			}
			if !strings.HasPrefix(u, "/assets/") {
				t.Errorf("%s loads %q: only /assets/ is allowed", f, u)
			}
		}
	}
}

func TestAssetsContentTypes(t *testing.T) {
	t.Parallel()
	srv := pagesServer(t, false)
	tests := []struct {
		path, ctype string
	}{
		{"/assets/common.js", "text/javascript; charset=utf-8"},
		{"/assets/kiosk.js", "text/javascript; charset=utf-8"},
		{"/assets/finance.js", "text/javascript; charset=utf-8"},
		{"/assets/demo.js", "text/javascript; charset=utf-8"},
		{"/assets/common.css", "text/css; charset=utf-8"},
		{"/assets/kiosk.css", "text/css; charset=utf-8"},
		{"/assets/vendor/qr-scanner.umd.min.js", "text/javascript; charset=utf-8"},
		// The worker module is loaded with import(): a wrong type would
		// make every scan fail silently.
		{"/assets/vendor/qr-scanner-worker.min.js", "text/javascript; charset=utf-8"},
		{"/assets/vendor/LICENSE-qr-scanner.txt", "text/plain; charset=utf-8"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
			if len(body) == 0 {
				t.Error("empty body")
			}
			etag := resp.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again, _ := get(t, srv.URL+tc.path, map[string]string{"If-None-Match": etag})
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation: status %d, want 304", again.StatusCode)
			}
		})
	}
}

func TestAssetsRefuseListingsAndUnknownPaths(t *testing.T) {
	t.Parallel()
	srv := pagesServer(t, false)
	for _, p := range []string{"/assets/", "/assets/vendor/", "/assets/nope.js", "/assets/../pages.go",
		"/assets/vendor/README.md/x", "/assets/%2e%2e/kiosk.html"} {
		resp, _ := get(t, srv.URL+p, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestDemoAppOnlyInDemoMode(t *testing.T) {
	t.Parallel()
	off := pagesServer(t, false)
	if resp, _ := get(t, off.URL+"/demo/app", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("demo off: /demo/app status %d, want 404", resp.StatusCode)
	}
	on := pagesServer(t, true)
	if resp, _ := get(t, on.URL+"/demo/app", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("demo on: /demo/app status %d, want 200", resp.StatusCode)
	}
}

func TestPagesRefuseWrites(t *testing.T) {
	t.Parallel()
	srv := pagesServer(t, true)
	for _, p := range []string{"/kiosk", "/finance", "/demo/app", "/assets/kiosk.js"} {
		resp, err := http.Post(srv.URL+p, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: status %d, want 405", p, resp.StatusCode)
		}
	}
}

// qr-scanner imports its worker as "./qr-scanner-worker.min.js" relative to
// its own URL, so both files must be embedded side by side.
func TestQRScannerVendoredSideBySide(t *testing.T) {
	t.Parallel()
	lib, err := webFS.ReadFile("web/assets/vendor/qr-scanner.umd.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lib), `import("./qr-scanner-worker.min.js")`) {
		t.Error("qr-scanner no longer imports ./qr-scanner-worker.min.js: check the vendored build")
	}
	worker, err := webFS.ReadFile("web/assets/vendor/qr-scanner-worker.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(worker), "createWorker") || !strings.Contains(string(worker), "URL.createObjectURL") {
		t.Error("worker file does not build a blob: worker")
	}
	if _, err := webFS.ReadFile("web/assets/vendor/LICENSE-qr-scanner.txt"); err != nil {
		t.Error("qr-scanner licence not shipped")
	}
}
