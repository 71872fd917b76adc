package banksim

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/softatm/softatm/iso"
)

// TLSConfig builds the simulator's TLS settings from PEM files: its
// certificate and key, and, when clientCAFile is not "", the CAs whose
// client certificates it requires (a bank that asks for the switch's
// certificate refuses a connection without one, or with one of another CA).
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("banksim: TLS needs a certificate and a key file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("banksim: loading certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: iso.TLSMinVersion, Certificates: []tls.Certificate{cert}}
	if clientCAFile != "" {
		pool, err := iso.LoadCertPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
