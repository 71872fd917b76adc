package iso_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/softatm/softatm/fixtures/testpki"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/iso/banksim"
)

// startTLSSim starts a simulator serving TLS with cfg.
func startTLSSim(t *testing.T, cfg *tls.Config) (*banksim.Sim, string) {
	t.Helper()
	sim := banksim.New(testAccounts(), banksim.WithLogger(quiet), banksim.WithTLS(cfg))
	addr, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, addr.String()
}

// pki is a bank's CA (its server certificate) and the CA the bank trusts
// for its clients, with a certificate of each; and a stranger's CA with a
// client certificate of its own.
type pki struct {
	bankCA, clientCA, otherCA *testpki.CA
	server, client, stranger  testpki.Leaf
}

func newPKI(t *testing.T) pki {
	t.Helper()
	p := pki{bankCA: testpki.NewCA(t, "bank CA"), clientCA: testpki.NewCA(t, "switch clients CA"), otherCA: testpki.NewCA(t, "other CA")}
	p.server = p.bankCA.Server(t, "bank.test")
	p.client = p.clientCA.Client(t, "softatm")
	p.stranger = p.otherCA.Client(t, "stranger")
	return p
}

// bankTLS is the bank's side: its certificate, and the client CA it
// requires when mutual.
func (p pki) bankTLS(mutual bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server.TLS}}
	if mutual {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, p.clientCA.Pool()
	}
	return cfg
}

func TestTLSLinkWorks(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	caFile := p.bankCA.WriteFile(t, dir, "bank-ca")
	clientCAFile := p.clientCA.WriteFile(t, dir, "client-ca")
	serverCert, serverKey := p.server.WriteFiles(t, dir, "server")
	clientCert, clientKey := p.client.WriteFiles(t, dir, "client")

	for _, tc := range []struct {
		name   string
		mutual bool
	}{
		{"server certificate only", false},
		{"client certificate required", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Both ends built from PEM files, as `softatm banksim` and
			// `softatm serve` build them.
			clientCA := ""
			if tc.mutual {
				clientCA = clientCAFile
			}
			scfg, err := banksim.TLSConfig(serverCert, serverKey, clientCA)
			if err != nil {
				t.Fatal(err)
			}
			sim, addr := startTLSSim(t, scfg)
			ccfg, err := iso.ClientTLSConfig(caFile, clientCert, clientKey, "bank.test")
			if err != nil {
				t.Fatal(err)
			}
			c := upClient(t, addr, iso.WithTLS(ccfg))
			r := authReq(c, acctRich, 500_000)
			resp, err := c.Authorize(context.Background(), r)
			if err != nil || resp.ResponseCode != iso.RCApproved || resp.ApprovalCode == "" {
				t.Fatalf("0100 over TLS: %+v %v", resp, err)
			}
			if sim.Received(iso.MTINetworkRequest) < 1 || sim.Received(iso.MTIAuthRequest) != 1 || sim.Received(banksim.ReceivedTLSOK) < 1 {
				t.Fatalf("sim saw 0800 %d, 0100 %d, handshakes %d", sim.Received(iso.MTINetworkRequest),
					sim.Received(iso.MTIAuthRequest), sim.Received(banksim.ReceivedTLSOK))
			}
		})
	}
}

// TestTLSLinkRefused: every handshake that must fail fails, the link
// reports down, requests are refused unsent, and the bank never reads a
// message.
func TestTLSLinkRefused(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	for _, tc := range []struct {
		name   string
		mutual bool
		client *tls.Config
	}{
		{"server certificate of an unknown CA", false,
			&tls.Config{RootCAs: p.otherCA.Pool(), ServerName: "bank.test"}},
		{"server certificate for another name", false,
			&tls.Config{RootCAs: p.bankCA.Pool(), ServerName: "another-bank.test"}},
		{"bank requires a client certificate, the switch has none", true,
			&tls.Config{RootCAs: p.bankCA.Pool(), ServerName: "bank.test"}},
		{"client certificate of a CA the bank does not trust", true,
			&tls.Config{RootCAs: p.bankCA.Pool(), ServerName: "bank.test", Certificates: []tls.Certificate{p.stranger.TLS}}},
		{"client certificate of the bank's own server CA", true,
			&tls.Config{RootCAs: p.bankCA.Pool(), ServerName: "bank.test", Certificates: []tls.Certificate{p.server.TLS}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, addr := startTLSSim(t, p.bankTLS(tc.mutual))
			c := newClient(t, addr, iso.WithTLS(tc.client))
			// Several attempts, each refused: the client keeps trying and
			// never comes up.
			waitFor(t, "refused handshakes", func() bool { return sim.Received(banksim.ReceivedTLSRefused) >= 3 })
			if c.Up() {
				t.Fatal("link up with a refused certificate")
			}
			if _, err := c.Authorize(context.Background(), authReq(c, acctRich, 500_000)); !errors.Is(err, iso.ErrLinkDown) {
				t.Fatalf("Authorize on a refused link: %v, want ErrLinkDown", err)
			}
			for _, mti := range []string{iso.MTINetworkRequest, iso.MTIAuthRequest, "malformed"} {
				if n := sim.Received(mti); n != 0 {
					t.Fatalf("the bank read %d %s over a refused link", n, mti)
				}
			}
			if n := sim.Received(banksim.ReceivedTLSOK); n != 0 {
				t.Fatalf("%d handshakes succeeded", n)
			}
		})
	}
}

// TestTLSNeverInClear: a TLS client facing a plain-TCP peer sends only a TLS
// handshake (a record of type 22), never a message in clear, and stays
// down.
func TestTLSNeverInClear(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var (
		mu    sync.Mutex
		first [][]byte
	)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
				b, _ := io.ReadAll(io.LimitReader(nc, 4096))
				mu.Lock()
				first = append(first, b)
				mu.Unlock()
			}()
		}
	}()
	c := newClient(t, ln.Addr().String(), iso.WithTLS(&tls.Config{RootCAs: p.bankCA.Pool(), ServerName: "bank.test",
		Certificates: []tls.Certificate{p.client.TLS}}), iso.WithConnectTimeout(200*time.Millisecond))
	waitFor(t, "two connection attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) >= 2
	})
	if c.Up() {
		t.Fatal("link up against a plain-TCP peer")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, b := range first {
		if len(b) == 0 || b[0] != 0x16 {
			t.Fatalf("connection %d began with % x, want a TLS handshake record (16)", i, b[:min(len(b), 8)])
		}
		if bytes.Contains(b, []byte("0800")) {
			t.Fatalf("connection %d carried an 0800 in clear", i)
		}
	}
}

func TestClientTLSConfigFiles(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	ca := p.bankCA.WriteFile(t, dir, "ca")
	cert, key := p.client.WriteFiles(t, dir, "client")
	for _, tc := range []struct {
		name                 string
		ca, cert, key, sname string
		ok                   bool
	}{
		{"CA and client certificate", ca, cert, key, "bank.test", true},
		{"system roots, no client certificate", "", "", "", "", true},
		{"certificate without key", ca, cert, "", "", false},
		{"key without certificate", ca, "", key, "", false},
		{"missing CA file", dir + "/nope.crt", "", "", "", false},
		{"CA file holding no certificate", key, "", "", "", false},
		{"key that is not the certificate's", ca, cert, writeOtherKey(t, p, dir), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := iso.ClientTLSConfig(tc.ca, tc.cert, tc.key, tc.sname)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if err == nil && (cfg.MinVersion < tls.VersionTLS12 || cfg.ServerName != tc.sname) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
	if _, err := banksim.TLSConfig("", "", ""); err == nil {
		t.Fatal("banksim.TLSConfig without a certificate: no error")
	}
}

func writeOtherKey(t *testing.T, p pki, dir string) string {
	t.Helper()
	_, key := p.stranger.WriteFiles(t, dir, "stranger")
	return key
}
