package ledger

import (
	"context"
	"errors"
	"fmt"
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
}

// civilDate is a date as the database returns a DATE: midnight UTC.
func civilDate(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// dateOf returns t's calendar date (as seen in t's own location).
func dateOf(t time.Time) time.Time { return civilDate(t.Date()) }

// cutoffDate applies the cut-off rule: an event at or after the cut-off
// belongs to the next calendar day.
func (l *Ledger) cutoffDate(at time.Time) time.Time {
	local := at.In(l.opt.loc)
	y, m, d := local.Date()
	cut := time.Date(y, m, d, l.opt.cutoffHour, l.opt.cutoffMinute, 0, 0, l.opt.loc)
	if !local.Before(cut) {
		return civilDate(y, m, d+1)
	}
	return civilDate(y, m, d)
}

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

// businessDate is BusinessDate inside a batch: the read of business_days is
// part of the batch's serializable transaction, so it conflicts with a
// concurrent CloseDay, and the day is registered so that Days lists it.
func (b *batch) businessDate(ctx context.Context, at time.Time) (time.Time, error) {
	cand := b.l.cutoffDate(at)
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

// CloseDay closes a business day: later events land in the next open day.
// It records the day's transfer count and amount sum. Closing a closed day
// is a no-op (the first close is kept).
func (l *Ledger) CloseDay(ctx context.Context, date time.Time, by string) error {
	if by == "" {
		return softatm.Errorf(softatm.EInvalid, "who closes the day is required")
	}
	d := dateOf(date)
	now := l.opt.clock()
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
		_, err = tx.Exec(ctx, `INSERT INTO business_days (date, closed, closed_at, closed_by, transfer_count, amount_sum)
			VALUES ($1, true, $2, $3, $4, $5)
			ON CONFLICT (date) DO UPDATE SET closed = true, closed_at = excluded.closed_at,
				closed_by = excluded.closed_by, transfer_count = excluded.transfer_count, amount_sum = excluded.amount_sum`,
			d, now, by, n, sum)
		if err != nil {
			return fmt.Errorf("closing business day: %w", err)
		}
		return nil
	})
}

// Days lists the business days that have seen a posting or were closed,
// oldest first.
func (l *Ledger) Days(ctx context.Context) ([]Day, error) {
	rows, err := l.pool.Query(ctx, `SELECT date, closed, closed_at, closed_by, transfer_count, amount_sum
		FROM business_days ORDER BY date`)
	if err != nil {
		return nil, fmt.Errorf("listing business days: %w", err)
	}
	defer rows.Close()
	var days []Day
	for rows.Next() {
		var d Day
		var at *time.Time
		if err := rows.Scan(&d.Date, &d.Closed, &at, &d.ClosedBy, &d.TransferCount, &d.AmountSum); err != nil {
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
	err := q.QueryRow(ctx, `SELECT closed, closed_at, closed_by, transfer_count, amount_sum FROM business_days WHERE date = $1`, date).
		Scan(&d.Closed, &at, &d.ClosedBy, &d.TransferCount, &d.AmountSum)
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
