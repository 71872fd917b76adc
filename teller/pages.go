package teller

// The staff pages (/kiosk, /finance) and the demo banking app (/demo/app) are
// plain HTML, CSS and JavaScript embedded in the binary: no build step, no
// framework, nothing loaded from another origin. Every script and style is a
// file under /assets/, so the Content-Security-Policy can forbid inline code
// entirely; a kiosk that renders text from a scanned code therefore cannot be
// made to run it. The kiosk never opens a URL from a scanned code: it only
// posts the scanned text to /v1/teller/scan.

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed web
var webFS embed.FS

// ContentSecurityPolicy is sent with every page and asset.
//
//   - worker-src blob: because qr-scanner runs its decoder as a worker built
//     from a blob: URL; without it every frame fails silently.
//   - media-src mediastream: because the kiosk shows the camera stream.
//   - img-src data: blob: for the QR image and the scanner's canvases.
//   - no 'unsafe-inline' anywhere: all code and styles come from /assets/.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; " +
	"worker-src blob: 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; " +
	"base-uri 'none'; form-action 'self'"

// page is one HTML page and the browser features it may use.
type page struct {
	route, file string
	// permissions is the Permissions-Policy: only the kiosk needs the camera.
	permissions string
}

var (
	kioskPage   = page{route: "GET /kiosk", file: "web/kiosk.html", permissions: "camera=(self), microphone=(), geolocation=()"}
	financePage = page{route: "GET /finance", file: "web/finance.html", permissions: "camera=(), microphone=(), geolocation=()"}
	demoPage    = page{route: "GET /demo/app", file: "web/demo.html", permissions: "camera=(), microphone=(), geolocation=()"}
)

// MountPages registers the embedded pages and their assets on mux: GET
// /kiosk, GET /finance, GET /assets/..., and GET /demo/app when demo is true
// (the stand-in banking app must never be reachable in production).
func MountPages(mux *http.ServeMux, demo bool) {
	pages := []page{kioskPage, financePage}
	if demo {
		pages = append(pages, demoPage)
	}
	for _, p := range pages {
		body, err := webFS.ReadFile(p.file)
		if err != nil {
			// The files are embedded at build time; a missing one is a bug.
			panic("teller: embedded page missing: " + p.file)
		}
		mux.Handle(p.route, pageHandler(p, body))
	}
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", assetHandler()))
}

// securityHeaders are set on every response of this file, pages and assets.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func pageHandler(p page, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		securityHeaders(h)
		h.Set("Permissions-Policy", p.permissions)
		// HTML is never cached: a kiosk must pick up a fixed page at once,
		// and a shared computer must not keep a staff page.
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	})
}

// asset is one embedded static file with its validator.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assetTypes are the content types of the files under web/assets; a file of
// any other kind is not served, so nothing is ever sniffed.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".png": "image/png",
	".svg": "image/svg+xml",
	".txt": "text/plain; charset=utf-8",
	".md":  "text/plain; charset=utf-8",
}

// loadAssets reads every file under web/assets once. Embedded files have no
// modification time, so the ETag (a hash of the content) is what lets a
// browser revalidate instead of downloading again.
func loadAssets() map[string]asset {
	sub, err := fs.Sub(webFS, "web/assets")
	if err != nil {
		panic("teller: embedded assets missing: " + err.Error())
	}
	out := make(map[string]asset)
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := assetTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		out[name] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		panic("teller: reading embedded assets: " + err.Error())
	}
	return out
}

func assetHandler() http.Handler {
	assets := loadAssets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No directory listings, no path tricks: only an exact file name.
		a, ok := assets[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			securityHeaders(w.Header())
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		securityHeaders(h)
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		// no-cache means "revalidate every time": a new binary serves new
		// files at once, an unchanged file costs a 304.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
