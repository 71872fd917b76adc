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
	atmswitch "github.com/softatm/softatm/switch"
)

// bankLinkFlags are `softatm admin bank`'s link settings (migration 00034).
// Each empty flag leaves its column as it is, so that an operator edits one
// thing at a time; running switches pick a change up within seconds
// (atmswitch.Links) and log it.
type bankLinkFlags struct {
	link, standby, timeout, echo, state *string
}

func (f *bankLinkFlags) register(fs *flag.FlagSet) {
	f.link = fs.String("link", "", "bank: host:port of its own ISO 8583 link (\"-\": none, it uses serve's -bank; empty: unchanged)")
	f.standby = fs.String("standby", "", "bank: host:port of its standby link (\"-\": none; empty: unchanged)")
	f.timeout = fs.String("link-timeout", "", "bank: deadline of one request on its link, e.g. 5s (\"default\": serve's -auth-timeout; empty: unchanged)")
	f.echo = fs.String("echo-interval", "", "bank: idle time before an echo test on its link, e.g. 30s (\"default\": 30s; empty: unchanged)")
	f.state = fs.String("state", "", "bank: active | suspended (suspended: creates refused, advices still delivered; empty: unchanged)")
}

// bankLink applies the link flags to bank code.
func bankLink(ctx context.Context, pool *pgxpool.Pool, code string, f bankLinkFlags) error {
	set := []string{}
	args := []any{code}
	add := func(col string, v any) {
		args = append(args, v)
		set = append(set, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	for _, a := range []struct {
		col, flag string
		v         string
	}{{"link_addr", "link", *f.link}, {"link_standby", "standby", *f.standby}} {
		switch v := strings.TrimSpace(a.v); v {
		case "":
		case "-":
			add(a.col, "")
		default:
			if _, _, err := net.SplitHostPort(v); err != nil {
				return softatm.Errorf(softatm.EInvalid, "-%s %q: want host:port", a.flag, v)
			}
			add(a.col, v)
		}
	}
	for _, d := range []struct {
		col, flag string
		v         string
	}{{"link_timeout_ms", "link-timeout", *f.timeout}, {"link_echo_ms", "echo-interval", *f.echo}} {
		switch v := strings.TrimSpace(d.v); v {
		case "":
		case "default":
			add(d.col, nil)
		default:
			dur, err := time.ParseDuration(v)
			if err != nil || dur < time.Millisecond || dur > time.Hour {
				return softatm.Errorf(softatm.EInvalid, "-%s %q: want a duration from 1ms to 1h, or \"default\"", d.flag, v)
			}
			add(d.col, dur.Milliseconds())
		}
	}
	switch v := strings.TrimSpace(*f.state); v {
	case "":
	case atmswitch.BankActive, atmswitch.BankSuspended:
		add("state", v)
	default:
		return softatm.Errorf(softatm.EInvalid, "-state %q: want %s or %s", v, atmswitch.BankActive, atmswitch.BankSuspended)
	}
	if len(set) == 0 {
		return nil
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
