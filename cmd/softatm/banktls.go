package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/softatm/softatm/iso"
)

// BankTLS is the TLS of the switch's bank link (`softatm serve -bank-tls-*`).
// With every field empty the link is plain TCP; with any set it is TLS and
// never falls back to plain TCP (see iso.WithTLS).
type BankTLS struct {
	CAFile     string // PEM CAs that sign the bank's certificate; "" trusts the system's roots
	CertFile   string // the switch's client certificate, for a bank that asks for one
	KeyFile    string // its key
	ServerName string // the name the bank's certificate must carry; "" checks the host of -bank
}

func (b *BankTLS) flags(fs *flag.FlagSet) {
	fs.StringVar(&b.CAFile, "bank-tls-ca", os.Getenv("SOFTATM_BANK_TLS_CA"), "speak TLS to the bank, trusting the CAs of this PEM file (SOFTATM_BANK_TLS_CA)")
	fs.StringVar(&b.CertFile, "bank-tls-cert", os.Getenv("SOFTATM_BANK_TLS_CERT"), "the switch's PEM client certificate, for a bank that asks for one; implies TLS (SOFTATM_BANK_TLS_CERT)")
	fs.StringVar(&b.KeyFile, "bank-tls-key", os.Getenv("SOFTATM_BANK_TLS_KEY"), "the PEM key of -bank-tls-cert (SOFTATM_BANK_TLS_KEY)")
	fs.StringVar(&b.ServerName, "bank-tls-server-name", os.Getenv("SOFTATM_BANK_TLS_SERVER_NAME"), "the name the bank's certificate must carry (default: the host of -bank); implies TLS (SOFTATM_BANK_TLS_SERVER_NAME)")
}

// enabled says whether the link speaks TLS: any of the settings asks for it.
func (b BankTLS) enabled() bool {
	return b.CAFile != "" || b.CertFile != "" || b.KeyFile != "" || b.ServerName != ""
}

// linkOptions is options of a bank's own TLS (the banks table's
// link_tls_*, atmswitch.LinkTLS): settings that cannot be loaded (a file
// gone, not PEM) are logged and give a link whose every handshake fails,
// so it stays down and its creates are refused: never plain TCP.
func (b BankTLS) linkOptions(log *slog.Logger) []iso.Option {
	cfg, err := iso.ClientTLSConfig(b.CAFile, b.CertFile, b.KeyFile, b.ServerName)
	if err != nil {
		log.Error("the bank's TLS settings cannot be loaded; its link stays down", "err", err)
		cfg = &tls.Config{MinVersion: iso.TLSMinVersion, VerifyConnection: func(tls.ConnectionState) error {
			return fmt.Errorf("the bank's TLS settings cannot be loaded: %w", err)
		}}
	}
	return []iso.Option{iso.WithTLS(cfg)}
}

// options returns the bank client's TLS option, none for plain TCP.
func (b BankTLS) options() ([]iso.Option, error) {
	if !b.enabled() {
		return nil, nil
	}
	cfg, err := iso.ClientTLSConfig(b.CAFile, b.CertFile, b.KeyFile, b.ServerName)
	if err != nil {
		return nil, errors.Join(errors.New("bank link TLS (-bank-tls-*)"), err)
	}
	return []iso.Option{iso.WithTLS(cfg)}, nil
}
