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

	"github.com/google/uuid"

	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/recon"
	atmswitch "github.com/softatm/softatm/switch"
)

// settleNS derives the ids of bank settlement transfers.
var settleNS = uuid.MustParse("0b6f3e57-3c1e-4a5e-9a43-7d8f0f2b6a21")

// runRecon is finance's command line: the day's settlement report, and the
// import and report of a bank's settlement file.
func runRecon(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("recon: settlement -date D [-csv] | import [-bank B -date D] FILE | report -bank B -date D | settle -bank B -date D -amount N | close -date D [-reason R]")
	}
	fs := flag.NewFlagSet("recon "+args[0], flag.ContinueOnError)
	url := fs.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	dateS := fs.String("date", "", "business date YYYY-MM-DD (default: today's)")
	bank := fs.String("bank", "", "bank code")
	csv := fs.Bool("csv", false, "settlement: CSV instead of JSON")
	amount := fs.Int64("amount", 0, "settle: what the bank paid, in dong")
	currency := fs.String("currency", "704", "settle: ISO 4217 numeric currency")
	reason := fs.String("reason", "", "close: why the day is closed while items are still open")
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
	store := recon.New(pool, atmswitch.NewReconLines(pool))
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
	case "settle":
		// One settlement per bank and day: the id is derived from both, so
		// running the command twice books the payment once.
		if *bank == "" || *amount <= 0 {
			return errors.New("recon settle -bank B -date D -amount N")
		}
		id := uuid.NewSHA1(settleNS, []byte(*bank+"/"+date.Format("2006-01-02")))
		if err := l.SettleBank(ctx, date, *bank, *amount, *currency, id); err != nil {
			return err
		}
		fmt.Println("ok")
		return nil
	case "close":
		c, err := store.CloseDay(ctx, atmswitch.NewReconLines(pool), l, date, "cli:"+os.Getenv("USER"), *reason)
		if err != nil {
			return err
		}
		return out.Encode(c)
	case "import":
		if fs.NArg() != 1 {
			return errors.New("recon import [-bank B -date D] FILE")
		}
		content, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		// The file names its bank and day; -bank and -date, when given,
		// must agree with it (a file of the older layout needs both).
		var asked time.Time
		if *dateS != "" {
			asked = date
		}
		res, err := store.Import(ctx, *bank, asked, filepath.Base(fs.Arg(0)), content)
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
