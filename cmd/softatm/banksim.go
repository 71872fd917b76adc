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

// runBanksim runs the issuer simulator: the ISO 8583 peer on -listen and its
// JSON control API (accounts, holds, faults, settlement file) on -control.
func runBanksim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("banksim", flag.ContinueOnError)
	listen := fs.String("listen", envOr("SOFTATM_BANK_ADDR", "127.0.0.1:8583"), "ISO 8583 address")
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
	d, err := fixtures.LoadDemo()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	sim := banksim.New(demoAccounts(d), append(opts, banksim.WithLogger(log))...)
	addr, err := sim.Listen(*listen)
	if err != nil {
		return err
	}
	defer sim.Close()
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		return err
	}
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("banksim: ISO 8583 on %s, control API on http://%s\n", addr, ln.Addr())
	<-ctx.Done()
	return srv.Close()
}
