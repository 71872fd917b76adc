package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	atmswitch "github.com/softatm/softatm/switch"
)

// bankLinkFlags are `softatm admin bank`'s link settings (migrations 00034,
// 00037).
// Each empty flag leaves its column as it is, so that an operator edits one
// thing at a time; running switches pick a change up within seconds
// (atmswitch.Links) and log it.
type bankLinkFlags struct {
	link, standby, timeout, echo, state   string
	tlsCA, tlsCert, tlsKey, tlsServerName string
}

func (f *bankLinkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.link, "link", "", "bank: host:port of its own ISO 8583 link (\"-\": none, it uses serve's -bank; empty: unchanged)")
	fs.StringVar(&f.standby, "standby", "", "bank: host:port of its standby link (\"-\": none; empty: unchanged)")
	fs.StringVar(&f.timeout, "link-timeout", "", "bank: deadline of one request on its link, e.g. 5s (\"default\": serve's -auth-timeout; empty: unchanged)")
	fs.StringVar(&f.echo, "echo-interval", "", "bank: idle time before an echo test on its link, e.g. 30s (\"default\": 30s; empty: unchanged)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "bank: PEM file (on the switch's host) of the CAs of its link's certificate; implies TLS on its own link (\"-\": none; empty: unchanged)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "bank: PEM client certificate the switch shows on its link, with -tls-key (\"-\": none; empty: unchanged)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "bank: the PEM key of -tls-cert (\"-\": none; empty: unchanged)")
	fs.StringVar(&f.tlsServerName, "tls-server-name", "", "bank: the name its link's certificate must carry; implies TLS (\"-\": none; empty: unchanged)")
	fs.StringVar(&f.state, "state", "", "bank: active | suspended (suspended: creates refused, advices still delivered; empty: unchanged)")
}

// bankLink applies the link flags to bank code.
func bankLink(ctx context.Context, pool *pgxpool.Pool, code string, f bankLinkFlags) error {
	set, args, err := f.plan(code)
	if err != nil || len(set) == 0 {
		return err
	}
	tag, err := pool.Exec(ctx, `UPDATE banks SET `+strings.Join(set, ", ")+` WHERE code = $1`, args...)
	if err != nil {
		return fmt.Errorf("bank %s: %w", code, err)
	}
	if tag.RowsAffected() == 0 {
		return softatm.Errorf(softatm.ENotFound, "bank %s not found", code)
	}
	return nil
}

// plan checks the flags and returns the columns to set ("col = $n") and
// their arguments ($1 is code), writing nothing: `admin bank` calls it
// before any of its writes, so that a refused flag changes nothing.
func (f bankLinkFlags) plan(code string) (set []string, args []any, err error) {
	args = []any{code}
	add := func(col string, v any) {
		args = append(args, v)
		set = append(set, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	for _, a := range []struct {
		col, flag string
		v         string
	}{{"link_addr", "link", f.link}, {"link_standby", "standby", f.standby}} {
		switch v := strings.TrimSpace(a.v); v {
		case "":
		case "-":
			add(a.col, "")
		default:
			if _, _, err := net.SplitHostPort(v); err != nil {
				return nil, nil, softatm.Errorf(softatm.EInvalid, "-%s %q: want host:port", a.flag, v)
			}
			add(a.col, v)
		}
	}
	for _, d := range []struct {
		col, flag string
		v         string
	}{{"link_timeout_ms", "link-timeout", f.timeout}, {"link_echo_ms", "echo-interval", f.echo}} {
		switch v := strings.TrimSpace(d.v); v {
		case "":
		case "default":
			add(d.col, nil)
		default:
			dur, err := time.ParseDuration(v)
			if err != nil || dur < time.Millisecond || dur > time.Hour {
				return nil, nil, softatm.Errorf(softatm.EInvalid, "-%s %q: want a duration from 1ms to 1h, or \"default\"", d.flag, v)
			}
			add(d.col, dur.Milliseconds())
		}
	}
	// TLS files are read here to refuse what cannot work (the admin runs on
	// the switch's host, where the files must be); a certificate goes with
	// its key.
	tlsFiles := map[string]string{}
	for _, t := range []struct {
		col, flag string
		v         string
	}{{"link_tls_ca", "tls-ca", f.tlsCA}, {"link_tls_cert", "tls-cert", f.tlsCert}, {"link_tls_key", "tls-key", f.tlsKey},
		{"link_tls_server_name", "tls-server-name", f.tlsServerName}} {
		switch v := strings.TrimSpace(t.v); v {
		case "":
		case "-":
			add(t.col, "")
		default:
			add(t.col, v)
			tlsFiles[t.flag] = v
		}
	}
	if (tlsFiles["tls-cert"] == "") != (tlsFiles["tls-key"] == "") {
		return nil, nil, softatm.Errorf(softatm.EInvalid, "-tls-cert and -tls-key go together")
	}
	if _, err := iso.ClientTLSConfig(tlsFiles["tls-ca"], tlsFiles["tls-cert"], tlsFiles["tls-key"], ""); err != nil {
		return nil, nil, softatm.Wrap(softatm.EInvalid, "bank TLS files: "+err.Error(), err)
	}
	switch v := strings.TrimSpace(f.state); v {
	case "":
	case atmswitch.BankActive, atmswitch.BankSuspended:
		add("state", v)
	default:
		return nil, nil, softatm.Errorf(softatm.EInvalid, "-state %q: want %s or %s", v, atmswitch.BankActive, atmswitch.BankSuspended)
	}
	return set, args, nil
}
