package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/fixtures/testpki"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
)

// TestServeBankTLS runs the switch against a bank that speaks TLS and
// requires the switch's client certificate, configured through serve's
// -bank-tls-* flags: a withdrawal is reserved over that link.
func TestServeBankTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bankCA, clientCA := testpki.NewCA(t, "bank CA"), testpki.NewCA(t, "client CA")
	serverCert, serverKey := bankCA.Server(t, "bank.test").WriteFiles(t, dir, "server")
	clientCert, clientKey := clientCA.Client(t, "softatm").WriteFiles(t, dir, "client")
	caFile, clientCAFile := bankCA.WriteFile(t, dir, "bank-ca"), clientCA.WriteFile(t, dir, "client-ca")

	scfg, err := banksim.TLSConfig(serverCert, serverKey, clientCAFile)
	if err != nil {
		t.Fatal(err)
	}
	d, err := fixtures.LoadDemo()
	if err != nil {
		t.Fatal(err)
	}
	tlsSim := banksim.New(demoAccounts(d), banksim.WithTLS(scfg), banksim.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	addr, err := tlsSim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlsSim.Close() })

	s := startSystem(t, func(c *ServeConfig) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		var parsed ServeConfig
		parsed.flags(fs)
		if err := fs.Parse([]string{"-bank-tls-ca", caFile, "-bank-tls-cert", clientCert, "-bank-tls-key", clientKey,
			"-bank-tls-server-name", "bank.test"}); err != nil {
			t.Fatal(err)
		}
		c.BankTLS, c.BankAddr = parsed.BankTLS, addr.String()
	})
	v := s.createWithdrawal(t, d.Accounts[0].Number, 500_000)
	if v.State != "reserved" {
		t.Fatalf("state %s", v.State)
	}
	if tlsSim.Received(iso.MTIAuthRequest) != 1 || s.Sim.Received(iso.MTIAuthRequest) != 0 || tlsSim.Received(banksim.ReceivedTLSOK) < 1 {
		t.Fatalf("0100s: TLS bank %d, plain bank %d", tlsSim.Received(iso.MTIAuthRequest), s.Sim.Received(iso.MTIAuthRequest))
	}
	if status, raw := s.call(t, nil, "GET", "/readyz", nil, nil, nil); status != http.StatusOK {
		t.Fatalf("readyz %d %s", status, raw)
	}
}

// TestBankTLSSettings: the flags that ask for TLS, and settings that
// cannot work refused before anything is dialled.
func TestBankTLSSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	caFile := ca.WriteFile(t, dir, "ca")
	cert, key := ca.Client(t, "softatm").WriteFiles(t, dir, "client")
	for _, tc := range []struct {
		name    string
		b       BankTLS
		tls, ok bool
	}{
		{"none: plain TCP", BankTLS{}, false, true},
		{"CA only", BankTLS{CAFile: caFile}, true, true},
		{"server name only: system roots", BankTLS{ServerName: "bank.test"}, true, true},
		{"client certificate", BankTLS{CAFile: caFile, CertFile: cert, KeyFile: key}, true, true},
		{"certificate without key", BankTLS{CAFile: caFile, CertFile: cert}, true, false},
		{"missing CA file", BankTLS{CAFile: dir + "/none.crt"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := tc.b.options()
			if (err == nil) != tc.ok || tc.b.enabled() != tc.tls || (err == nil && (len(opts) == 1) != tc.tls) {
				t.Fatalf("options %d, err %v; want tls %v ok %v", len(opts), err, tc.tls, tc.ok)
			}
		})
	}
}

// TestBanksimTLSFlags: the simulator refuses TLS settings that cannot work
// before it listens, and runs with good ones.
func TestBanksimTLSFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	cert, key := ca.Server(t, "bank.test").WriteFiles(t, dir, "server")
	caFile := ca.WriteFile(t, dir, "ca")
	base := []string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"client CA without a certificate", []string{"-tls-client-ca", caFile}, false},
		{"certificate without key", []string{"-tls-cert", cert}, false},
		{"key of no certificate", []string{"-tls-cert", caFile, "-tls-key", key}, false},
		{"client CA file of no certificate", []string{"-tls-cert", cert, "-tls-key", key, "-tls-client-ca", key}, false},
		{"mutual TLS", []string{"-tls-cert", cert, "-tls-key", key, "-tls-client-ca", caFile}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a good configuration starts and stops at once
			err := runBanksim(ctx, append(append([]string{}, base...), tc.args...))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestBankOwnTLS: a bank's own link speaks TLS with its own files (admin
// bank -tls-*), set on a running switch; the shared -bank link stays plain.
// Then the switch's client certificate is swapped for one the bank does not
// trust: the link never comes up and MB's creates are refused, never sent in
// clear. Files that cannot work are refused by the admin command before
// anything is written.
func TestBankOwnTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	bankCA, clientCA, rogueCA := testpki.NewCA(t, "bank CA"), testpki.NewCA(t, "client CA"), testpki.NewCA(t, "rogue CA")
	serverCert, serverKey := bankCA.Server(t, "bank.test").WriteFiles(t, dir, "server")
	clientCert, clientKey := clientCA.Client(t, "softatm").WriteFiles(t, dir, "client")
	rogueCert, rogueKey := rogueCA.Client(t, "softatm").WriteFiles(t, dir, "rogue")
	caFile, clientCAFile := bankCA.WriteFile(t, dir, "bank-ca"), clientCA.WriteFile(t, dir, "client-ca")

	s := startSystem(t, func(c *ServeConfig) { c.LinksRefresh = 200 * time.Millisecond })
	scfg, err := banksim.TLSConfig(serverCert, serverKey, clientCAFile)
	if err != nil {
		t.Fatal(err)
	}
	mb := banksim.New(demoAccounts(s.Demo), banksim.WithBank("MB"), banksim.WithTLS(scfg),
		banksim.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	addr, err := mb.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	admin := func(extra ...string) error {
		return runAdmin(ctx, append([]string{"bank", "-database", s.Main.Config.DatabaseURL, "-code", "MB", "-name", s.Demo.Banks[0].Name}, extra...))
	}
	create := func() (int, string) {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		status, _ := s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{
			"account": "9704000000000011", "amount": 100_000, "currency": "VND", "holder_name": "Nguyen Van An", "phone_last4": "5611",
		}, &e)
		return status, e.Error.Code
	}

	for _, bad := range [][]string{
		{"-tls-ca", serverKey},                        // not a certificate
		{"-tls-ca", dir + "/missing.pem"},             // no such file
		{"-tls-cert", clientCert},                     // a certificate without its key
		{"-tls-cert", clientCert, "-tls-key", caFile}, // a key that is not one
	} {
		if err := admin(append([]string{"-link", addr.String()}, bad...)...); err == nil {
			t.Errorf("admin bank %v accepted", bad)
		}
	}
	var link string
	if err := s.Main.Pool.QueryRow(ctx, `SELECT link_addr FROM banks WHERE code = 'MB'`).Scan(&link); err != nil || link != "" {
		t.Fatalf("a refused admin bank wrote link %q (%v)", link, err)
	}

	if err := admin("-link", addr.String(), "-tls-ca", caFile, "-tls-cert", clientCert, "-tls-key", clientKey,
		"-tls-server-name", "bank.test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "MB's own TLS link up", func() bool {
		for _, st := range s.Main.Links.Status() {
			if st.Key == "MB" && st.Up {
				return true
			}
		}
		return false
	})
	shared := s.Sim.Received(iso.MTIAuthRequest)
	if status, code := create(); status != http.StatusCreated {
		t.Fatalf("create over MB's TLS link: %d %s", status, code)
	}
	if mb.Received(iso.MTIAuthRequest) != 1 || mb.Received(banksim.ReceivedTLSOK) < 1 || s.Sim.Received(iso.MTIAuthRequest) != shared {
		t.Fatalf("0100s: MB's TLS bank %d (TLS handshakes %d), shared plain bank %d more",
			mb.Received(iso.MTIAuthRequest), mb.Received(banksim.ReceivedTLSOK), s.Sim.Received(iso.MTIAuthRequest)-shared)
	}

	// A certificate MB does not trust: the link reconnects, every handshake
	// fails, MB's creates are refused and nothing reaches MB in clear.
	if err := admin("-tls-cert", rogueCert, "-tls-key", rogueKey); err != nil {
		t.Fatal(err)
	}
	eventually(t, "MB's link redialled with the rogue certificate and refused", func() bool {
		return mb.Received(banksim.ReceivedTLSRefused) > 0
	})
	eventually(t, "MB's creates refused", func() bool {
		_, code := create()
		return code == "bank_unavailable"
	})
	sent := mb.Received(iso.MTIAuthRequest)
	for range 3 {
		if status, code := create(); code != "bank_unavailable" {
			t.Fatalf("create for MB with a refused certificate: %d %s", status, code)
		}
	}
	if got := mb.Received(iso.MTIAuthRequest); got != sent {
		t.Errorf("MB got %d more 0100s while its link's certificate is refused", got-sent)
	}
	if got := s.Sim.Received(iso.MTIAuthRequest); got != shared {
		t.Errorf("MB's withdrawals went to the shared plain link (%d)", got-shared)
	}
}
