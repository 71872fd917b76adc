package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/recon"
)

// runRecon is finance's command line: the day's settlement report, and the
// import and report of a bank's settlement file.
func runRecon(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("recon: settlement -date D [-csv] | import -bank B -date D FILE | report -bank B -date D | close -date D")
	}
	fs := flag.NewFlagSet("recon "+args[0], flag.ContinueOnError)
	url := fs.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	dateS := fs.String("date", "", "business date YYYY-MM-DD (default: today's)")
	bank := fs.String("bank", "", "bank code")
	csv := fs.Bool("csv", false, "settlement: CSV instead of JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	pool, err := openPool(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	l := ledger.New(pool)
	defer l.Close()
	date, err := l.BusinessDate(ctx, time.Now())
	if err != nil {
		return err
	}
	if *dateS != "" {
		if date, err = time.Parse("2006-01-02", *dateS); err != nil {
			return fmt.Errorf("-date must be YYYY-MM-DD")
		}
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	store := recon.New(pool)
	switch args[0] {
	case "settlement":
		rep, err := l.Settlement(ctx, date)
		if err != nil {
			return err
		}
		if *csv {
			return rep.WriteCSV(os.Stdout)
		}
		return out.Encode(rep)
	case "close":
		return l.CloseDay(ctx, date, "cli:"+os.Getenv("USER"))
	case "import":
		if fs.NArg() != 1 || *bank == "" {
			return errors.New("recon import -bank B -date D FILE")
		}
		content, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		res, err := store.Import(ctx, *bank, date, filepath.Base(fs.Arg(0)), content)
		if err != nil {
			return err
		}
		return out.Encode(res)
	case "report":
		items, err := store.Report(ctx, *bank, date)
		if err != nil {
			return err
		}
		return out.Encode(items)
	}
	return fmt.Errorf("recon: unknown operation %q", args[0])
}
