package iso

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	connection "github.com/moov-io/iso8583-connection"
)

// TLS on the bank link. A bank link crosses networks the switch does not
// own, so a bank may ask for TLS and for the switch's client certificate.
//
// Decisions:
//   - A client given a TLS configuration never speaks in clear: every dial
//     is a TLS dial (tls.DialWithDialer inside iso8583-connection), and a
//     failed handshake (unknown CA, wrong name, the bank refusing our
//     certificate) is a failed connect. The link stays down (Up false,
//     requests refused with ErrLinkDown) and the client keeps retrying with
//     its backoff; there is no fall-back to plain TCP.
//   - With TLS 1.3 the server checks the client's certificate after the
//     client has finished its side of the handshake, so a refused client
//     certificate shows as the connection dropping before the sign-on's
//     0810: sign-on fails and the link is down all the same. The 0800 was
//     written inside the TLS session, never in clear.
//   - The minimum version is TLS 1.2 unless the configuration asks for more.
//   - The configuration is cloned per connection, so a caller may not change
//     it under a running client.

// TLSMinVersion is the oldest TLS version either end of a bank link accepts.
const TLSMinVersion = tls.VersionTLS12

// WithTLS makes the client dial the bank over TLS with cfg (nil: plain TCP,
// the default). cfg names the CAs that sign the bank's certificate
// (RootCAs; nil: the system's), the switch's client certificate when the
// bank asks for one (Certificates), and ServerName when the certificate
// names the bank by another name than the dialled host.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// connTLS is the connection option that makes iso8583-connection dial with
// TLS.
func connTLS(cfg *tls.Config) connection.Option {
	return func(o *connection.Options) error {
		c := cfg.Clone()
		if c.MinVersion < TLSMinVersion {
			c.MinVersion = TLSMinVersion
		}
		o.TLSConfig = c
		return nil
	}
}

// ClientTLSConfig builds the bank link's TLS settings from PEM files:
// caFile, the CAs that sign the bank's certificate ("" trusts the system's
// roots); certFile and keyFile, the switch's client certificate and key
// (both or neither); serverName, the name the bank's certificate must
// carry ("" checks the dialled host).
func ClientTLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: TLSMinVersion, ServerName: serverName}
	if caFile != "" {
		pool, err := LoadCertPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("iso: a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("iso: loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// LoadCertPool reads every PEM certificate of file into a pool; a file
// with none is an error.
func LoadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("iso: reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("iso: %s holds no PEM certificate", file)
	}
	return pool, nil
}
