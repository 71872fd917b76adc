package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	softatm "github.com/softatm/softatm"
)

// closedDaysMax bounds how many consecutive closed days a posting skips;
// more means the calendar was closed ahead by mistake.
const closedDaysMax = 366

// Day is a business day.
type Day struct {
	Date     time.Time `json:"date"`
	Closed   bool      `json:"closed"`
	ClosedAt time.Time `json:"closed_at"`
	ClosedBy string    `json:"closed_by"`
	// TransferCount and AmountSum are frozen at close.
	TransferCount int64 `json:"transfer_count"`
	AmountSum     int64 `json:"amount_sum"`
	// CloseReason and OpenAtClose: why the day was closed with items
	// still open, and which (see DayClose).
	CloseReason string   `json:"close_reason"`
	OpenAtClose []string `json:"open_at_close"`
}

// civilDate is a date as the database returns a DATE: midnight UTC.
func civilDate(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// dateOf returns t's calendar date (as seen in t's own location).
func dateOf(t time.Time) time.Time { return civilDate(t.Date()) }

// cutoffDate applies the default cut-off rule (see Cutoff.DateAt).
func (l *Ledger) cutoffDate(at time.Time) time.Time { return l.opt.cutoff.DateAt(at, l.opt.loc) }

// unitDate is the business date a unit asks for: the bank's date when it
// named one, else its event time under its bank's cut-off.
func (l *Ledger) unitDate(u Unit) time.Time {
	switch {
	case !u.Date.IsZero():
		return dateOf(u.Date)
	case u.Cutoff != nil:
		return u.Cutoff.DateAt(u.At, l.opt.loc)
	}
	return l.cutoffDate(u.At)
}

// Zone is the zone every cut-off is read in.
func (l *Ledger) Zone() *time.Location { return l.opt.loc }

// DateAt returns the business date of an event at t under cut-off c (the
// calendar alone: a closed day is not skipped).
func (l *Ledger) DateAt(t time.Time, c Cutoff) time.Time { return c.DateAt(t, l.opt.loc) }

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// openDate returns date, or the first open day after it if it is closed.
func openDate(ctx context.Context, q querier, date time.Time) (time.Time, error) {
	for range closedDaysMax {
		var closed bool
		err := q.QueryRow(ctx, `SELECT closed FROM business_days WHERE date = $1`, date).Scan(&closed)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !closed) {
			return date, nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("reading business day: %w", err)
		}
		date = date.AddDate(0, 0, 1)
	}
	return time.Time{}, softatm.Errorf(softatm.EDayClosed, "more than %d consecutive business days are closed", closedDaysMax)
}

// BusinessDate returns the business date an event at time at lands in: the
// cut-off rule, then the first open day.
func (l *Ledger) BusinessDate(ctx context.Context, at time.Time) (time.Time, error) {
	return openDate(ctx, l.pool, l.cutoffDate(at))
}

// BusinessDateUnder is BusinessDate under cut-off c (a bank's; nil: the
// default), as a unit with that Cutoff is dated.
func (l *Ledger) BusinessDateUnder(ctx context.Context, at time.Time, c *Cutoff) (time.Time, error) {
	if c == nil {
		return l.BusinessDate(ctx, at)
	}
	return openDate(ctx, l.pool, c.DateAt(at, l.opt.loc))
}

// businessDate is BusinessDate inside a batch, for the date a unit asks
// for (unitDate): the read of business_days is part of the batch's
// serializable transaction, so it conflicts with a concurrent CloseDay, and
// the day is registered so that Days lists it. A closed day is never
// changed: an event dated into one (a bank's field 15 naming a day already
// closed) lands in the next open day, and reconciliation shows the
// difference as date_differs.
func (b *batch) businessDate(ctx context.Context, cand time.Time) (time.Time, error) {
	if d, ok := b.days[cand]; ok {
		return d, nil
	}
	d, err := openDate(ctx, b.tx, cand)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := b.tx.Exec(ctx, `INSERT INTO business_days (date) VALUES ($1) ON CONFLICT (date) DO NOTHING`, d); err != nil {
		return time.Time{}, fmt.Errorf("registering business day: %w", err)
	}
	b.days[cand] = d
	return d, nil
}

// DayClose asks to close a business day.
type DayClose struct {
	Date time.Time
	By   string // who closes it
	// Cutoffs are every bank's cut-offs: the day closes only once the
	// latest of them has passed, so that no bank can still put a
	// transaction into it (EDayNotOver). None: the ledger's default.
	Cutoffs []Cutoff
	// Open lists, in words, what is still open for the day as the caller
	// found it (unresolved recon rows, exceptions, claims in flight).
	// Closing with anything open needs Reason (EDayOpenItems); both are
	// stored with the close.
	Open   []string
	Reason string
}

// closeOpenMax bounds the open items stored with a close.
const closeOpenMax = 100

// CloseDay closes a business day: from then on nothing changes it (a
// posting dated into it lands in the next open day; a till count or a
// bank payment for it is refused with EDayClosed). It refuses before the
// latest cut-off has passed (EDayNotOver): the date of a transaction comes
// from its bank's cut-off, not from the close, so closing early would
// only leave the day open to postings it claims to have frozen. It records
// the day's transfer count and amount sum. Closing a closed day is a
// no-op (the first close is kept).
func (l *Ledger) CloseDay(ctx context.Context, c DayClose) error {
	c.Reason = strings.TrimSpace(c.Reason)
	switch {
	case c.By == "":
		return softatm.Errorf(softatm.EInvalid, "who closes the day is required")
	case len(c.Open) > closeOpenMax:
		c.Open = append(c.Open[:closeOpenMax:closeOpenMax], fmt.Sprintf("and %d more", len(c.Open)-closeOpenMax))
	}
	for _, cut := range c.Cutoffs {
		if !cut.valid() {
			return softatm.Errorf(softatm.EInvalid, "cut-off %s is not a time of day", cut)
		}
	}
	d := dateOf(c.Date)
	now := l.opt.clock()
	cuts := c.Cutoffs
	if len(cuts) == 0 {
		cuts = []Cutoff{l.opt.cutoff}
	}
	latest := Latest(cuts)
	if over := latest.Passed(d, l.opt.loc); now.Before(over) {
		return softatm.Errorf(softatm.EDayNotOver, "business day %s is not over: the last bank's cut-off is %s (%s), after now",
			d.Format(time.DateOnly), latest, over.In(l.opt.loc).Format("2006-01-02 15:04:05 MST"))
	}
	if len(c.Open) > 0 && c.Reason == "" {
		return softatm.Errorf(softatm.EDayOpenItems, "business day %s still has open items (%s): give a reason to close it anyway",
			d.Format(time.DateOnly), strings.Join(c.Open, "; "))
	}
	open := c.Open
	if open == nil {
		open = []string{}
	}
	return RunTx(ctx, l.pool, l.opt.maxRetries, func(tx pgx.Tx) error {
		var closed bool
		err := tx.QueryRow(ctx, `SELECT closed FROM business_days WHERE date = $1`, d).Scan(&closed)
		if err == nil && closed {
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading business day: %w", err)
		}
		// Reading the day's transfers makes a posting racing this close
		// conflict with it under SERIALIZABLE: one of the two is re-run.
		var n, sum int64
		if err := tx.QueryRow(ctx, `SELECT count(*), COALESCE(sum(amount), 0)::BIGINT FROM transfers WHERE business_date = $1`, d).
			Scan(&n, &sum); err != nil {
			return fmt.Errorf("counting the day's transfers: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO business_days (date, closed, closed_at, closed_by, transfer_count, amount_sum, close_reason, open_at_close)
			VALUES ($1, true, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (date) DO UPDATE SET closed = true, closed_at = excluded.closed_at,
				closed_by = excluded.closed_by, transfer_count = excluded.transfer_count, amount_sum = excluded.amount_sum,
				close_reason = excluded.close_reason, open_at_close = excluded.open_at_close`,
			d, now, c.By, n, sum, c.Reason, open)
		if err != nil {
			return fmt.Errorf("closing business day: %w", err)
		}
		return nil
	})
}

// Days lists the business days that have seen a posting or were closed,
// oldest first.
func (l *Ledger) Days(ctx context.Context) ([]Day, error) {
	rows, err := l.pool.Query(ctx, `SELECT date, closed, closed_at, closed_by, transfer_count, amount_sum,
		close_reason, open_at_close FROM business_days ORDER BY date`)
	if err != nil {
		return nil, fmt.Errorf("listing business days: %w", err)
	}
	defer rows.Close()
	var days []Day
	for rows.Next() {
		var d Day
		var at *time.Time
		if err := rows.Scan(&d.Date, &d.Closed, &at, &d.ClosedBy, &d.TransferCount, &d.AmountSum,
			&d.CloseReason, &d.OpenAtClose); err != nil {
			return nil, fmt.Errorf("listing business days: %w", err)
		}
		if at != nil {
			d.ClosedAt = *at
		}
		days = append(days, d)
	}
	return days, rows.Err()
}

// day returns one business day (open and unknown if it has no row).
func day(ctx context.Context, q querier, date time.Time) (Day, error) {
	d := Day{Date: date}
	var at *time.Time
	err := q.QueryRow(ctx, `SELECT closed, closed_at, closed_by, transfer_count, amount_sum, close_reason, open_at_close
		FROM business_days WHERE date = $1`, date).
		Scan(&d.Closed, &at, &d.ClosedBy, &d.TransferCount, &d.AmountSum, &d.CloseReason, &d.OpenAtClose)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("reading business day: %w", err)
	}
	if at != nil {
		d.ClosedAt = *at
	}
	return d, nil
}
