package auth_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/softatm/softatm/switch/auth"
)

// FuzzSourceAddr feeds SourceAddr any peer address and X-Forwarded-For: it
// must not panic, must stay short (it keys maps and log lines), and must
// ignore the header unless the peer is a trusted proxy.
func FuzzSourceAddr(f *testing.F) {
	for _, seed := range [][2]string{
		{"192.0.2.1:1234", ""},
		{"10.0.0.5:443", "1.2.3.4, 198.51.100.7"},
		{"10.0.0.5:443", "garbage,,, ::1"},
		{"[fd00::1]:443", "2001:db8::1%eth0"},
		{"[fe80::1%eth0]:443", "10.0.0.1, 10.0.0.2"},
		{"not-an-address-at-all-and-rather-long-0123456789-0123456789-0123456789", "x"},
	} {
		f.Add(seed[0], seed[1])
	}
	svc := auth.New(nil, auth.WithTrustedProxies(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")))
	plain := auth.New(nil)
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		without := plain.SourceAddr(r)
		r.Header.Set("X-Forwarded-For", xff)
		got := svc.SourceAddr(r)
		if len(got) > 64 {
			t.Fatalf("source %q longer than 64", got)
		}
		if plain.SourceAddr(r) != without {
			t.Fatalf("without trusted proxies the header changed the source: %q", xff)
		}
	})
}
