package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/iso/banksim"
)

// demoAccounts turns the demo fixtures into the simulator's accounts.
func demoAccounts(d fixtures.Demo) []banksim.Account {
	out := make([]banksim.Account, 0, len(d.Accounts))
	for _, a := range d.Accounts {
		out = append(out, banksim.Account{Number: a.Number, Bank: a.Bank, Holder: a.Holder, Phone: a.Phone,
			Balance: a.Balance, DailyLimit: a.DailyLimit, Blocked: a.Blocked})
	}
	return out
}

// simBank is one bank the simulator plays and the address of its port.
type simBank struct{ Code, Addr string }

// parseSimBanks reads -banks: "MB=127.0.0.1:8583,AGR=127.0.0.1:8585".
func parseSimBanks(s string) ([]simBank, error) {
	var out []simBank
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		code, addr, ok := strings.Cut(part, "=")
		if !ok || code == "" || addr == "" {
			return nil, fmt.Errorf("-banks %q: want CODE=host:port", part)
		}
		if seen[code] {
			return nil, fmt.Errorf("-banks: bank %s named twice", code)
		}
		seen[code] = true
		out = append(out, simBank{Code: code, Addr: addr})
	}
	return out, nil
}

// multiSim is many banks in one process: a banksim.Sim per bank, each on
// its own port, with its own accounts (those of its bank), faults, holds
// and settlement file, and its bank's code on every log line.
type multiSim struct {
	Sims  map[string]*banksim.Sim
	Addrs map[string]net.Addr
}

// startSims starts one simulator per bank, each holding the accounts whose
// Bank is its code.
func startSims(banks []simBank, accounts []banksim.Account, log *slog.Logger, opts ...banksim.Option) (*multiSim, error) {
	ms := &multiSim{Sims: map[string]*banksim.Sim{}, Addrs: map[string]net.Addr{}}
	for _, b := range banks {
		var own []banksim.Account
		for _, a := range accounts {
			if a.Bank == b.Code {
				own = append(own, a)
			}
		}
		sim := banksim.New(own, append(slices.Clone(opts), banksim.WithLogger(log), banksim.WithBank(b.Code))...)
		addr, err := sim.Listen(b.Addr)
		if err != nil {
			ms.Close()
			return nil, fmt.Errorf("bank %s: %w", b.Code, err)
		}
		ms.Sims[b.Code], ms.Addrs[b.Code] = sim, addr
	}
	return ms, nil
}

// Close stops every bank.
func (ms *multiSim) Close() {
	for _, s := range ms.Sims {
		s.Close()
	}
}

// simControl is the control API of one simulator: its ControlHandler and
// GET /settlement/{date}.
func simControl(sim *banksim.Sim) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", sim.ControlHandler())
	mux.HandleFunc("GET /settlement/{date}", func(w http.ResponseWriter, r *http.Request) {
		day, err := time.Parse("2006-01-02", r.PathValue("date"))
		if err != nil {
			http.Error(w, "date must be YYYY-MM-DD", http.StatusBadRequest)
			return
		}
		// One file per bank (?bank=MB; default: the simulator's one bank).
		bank := r.URL.Query().Get("bank")
		var buf bytes.Buffer
		if bank == "" {
			err = sim.WriteSettlementFile(&buf, day)
		} else {
			err = sim.WriteBankSettlementFile(&buf, bank, day)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if bank == "" {
			bank = sim.Bank()
		}
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="`+banksim.SettlementFileName(bank, day)+`"`)
		_, _ = w.Write(buf.Bytes())
	})
	return mux
}

// Handler serves each bank's control API under /{code}/ (for example
// /AGR/accounts, /AGR/faults, /AGR/settlement/2026-11-27).
func (ms *multiSim) Handler() http.Handler {
	mux := http.NewServeMux()
	for code, sim := range ms.Sims {
		mux.Handle("/"+code+"/", http.StripPrefix("/"+code, simControl(sim)))
	}
	return mux
}

// runBanksim runs the issuer simulator: the ISO 8583 peer on -listen and its
// JSON control API (accounts, holds, faults, settlement file) on -control.
// With -banks it plays many banks, one port each (see multiSim), and the
// control API serves each under /{code}/.
func runBanksim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("banksim", flag.ContinueOnError)
	listen := fs.String("listen", envOr("SOFTATM_BANK_ADDR", "127.0.0.1:8583"), "ISO 8583 address (one simulator for every account; ignored with -banks)")
	banksF := fs.String("banks", "", "play many banks, one port each: CODE=host:port,... (each holds the demo accounts of its bank)")
	control := fs.String("control", "127.0.0.1:8584", "HTTP control API address")
	tlsCert := fs.String("tls-cert", "", "serve ISO 8583 over TLS with this PEM certificate (and -tls-key); empty: plain TCP")
	tlsKey := fs.String("tls-key", "", "the PEM key of -tls-cert")
	tlsClientCA := fs.String("tls-client-ca", "", "require a client certificate signed by a CA of this PEM file (needs -tls-cert)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := []banksim.Option{}
	switch {
	case *tlsCert != "" || *tlsKey != "":
		cfg, err := banksim.TLSConfig(*tlsCert, *tlsKey, *tlsClientCA)
		if err != nil {
			return err
		}
		opts = append(opts, banksim.WithTLS(cfg))
	case *tlsClientCA != "":
		return errors.New("banksim: -tls-client-ca needs -tls-cert and -tls-key")
	}
	banks, err := parseSimBanks(*banksF)
	if err != nil {
		return err
	}
	d, err := fixtures.LoadDemo()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var handler http.Handler
	if len(banks) > 0 {
		ms, err := startSims(banks, demoAccounts(d), log, opts...)
		if err != nil {
			return err
		}
		defer ms.Close()
		for _, b := range banks {
			fmt.Printf("banksim: bank %s on %s\n", b.Code, ms.Addrs[b.Code])
		}
		handler = ms.Handler()
	} else {
		sim := banksim.New(demoAccounts(d), append(opts, banksim.WithLogger(log))...)
		addr, err := sim.Listen(*listen)
		if err != nil {
			return err
		}
		defer sim.Close()
		fmt.Printf("banksim: ISO 8583 on %s\n", addr)
		handler = simControl(sim)
	}
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("banksim: control API on http://%s\n", ln.Addr())
	<-ctx.Done()
	return srv.Close()
}
