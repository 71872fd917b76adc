package recon

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/softatm/softatm/ledger"
)

// DayFacts is what the switch tells about a business day when finance
// closes it. The switch implements it (atmswitch.ReconLines).
type DayFacts interface {
	// Cutoffs returns every bank's cut-off (bank code → cut-off).
	Cutoffs(ctx context.Context) (map[string]ledger.Cutoff, error)
	// OpenItems lists, in words, what the switch still has open for the
	// day: unresolved exceptions, claims in flight.
	OpenItems(ctx context.Context, date time.Time) ([]string, error)
}

// Closing is what closing a business day would meet: when it may close
// (every bank's cut-off passed) and what is still open.
type Closing struct {
	Date time.Time `json:"date"`
	// ClosableAt is when the last bank's cut-off passes.
	ClosableAt time.Time `json:"closable_at"`
	// Cutoffs are the banks' cut-offs, as HH:MM:SS.
	Cutoffs map[string]string `json:"cutoffs"`
	// Open lists what is still open; closing anyway needs a reason.
	Open []string `json:"open"`
}

// Closing gathers what closing business day date would meet: the banks'
// cut-offs, and what is open: for each bank, payouts whose settlement file
// has not arrived, and unresolved reconciliation rows; and the switch's
// own open items.
func (s *Store) Closing(ctx context.Context, facts DayFacts, l *ledger.Ledger, date time.Time) (Closing, []ledger.Cutoff, error) {
	d := dateOf(date)
	cuts, err := facts.Cutoffs(ctx)
	if err != nil {
		return Closing{}, nil, err
	}
	c := Closing{Date: d, Cutoffs: map[string]string{}, Open: []string{}}
	banks := make([]string, 0, len(cuts))
	list := make([]ledger.Cutoff, 0, len(cuts))
	for b, cut := range cuts {
		banks = append(banks, b)
		list = append(list, cut)
		c.Cutoffs[b] = cut.String()
	}
	sort.Strings(banks)
	c.ClosableAt = ledger.Latest(list).Passed(d, l.Zone())
	for _, b := range banks {
		ws, err := s.switches.Lines(ctx, b, d)
		if err != nil {
			return Closing{}, nil, fmt.Errorf("reading the switch's lines: %w", err)
		}
		var files, unresolved int
		err = s.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM recon_files WHERE bank = $1 AND business_date = $2),
			(SELECT count(*) FROM recon_items WHERE bank = $1 AND business_date = $2 AND status <> $3 AND NOT resolved)`,
			b, d, string(StatusMatched)).Scan(&files, &unresolved)
		if err != nil {
			return Closing{}, nil, fmt.Errorf("reading the day's recon: %w", err)
		}
		if files == 0 && len(ws) > 0 {
			c.Open = append(c.Open, fmt.Sprintf("bank %s: %d payout(s) awaiting the bank's settlement file", b, len(ws)))
		}
		if unresolved > 0 {
			c.Open = append(c.Open, fmt.Sprintf("bank %s: %d unresolved reconciliation row(s)", b, unresolved))
		}
	}
	more, err := facts.OpenItems(ctx, d)
	if err != nil {
		return Closing{}, nil, err
	}
	c.Open = append(c.Open, more...)
	return c, list, nil
}

// CloseDay closes business day date in the ledger (ledger.CloseDay) with
// what Closing finds: refused before the last bank's cut-off, and, with
// anything open, without a reason. It returns what it found.
func (s *Store) CloseDay(ctx context.Context, facts DayFacts, l *ledger.Ledger, date time.Time, by, reason string) (Closing, error) {
	c, cuts, err := s.Closing(ctx, facts, l, date)
	if err != nil {
		return Closing{}, err
	}
	return c, l.CloseDay(ctx, ledger.DayClose{Date: c.Date, By: by, Cutoffs: cuts, Open: c.Open, Reason: reason})
}
