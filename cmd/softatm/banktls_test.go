package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"testing"

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
