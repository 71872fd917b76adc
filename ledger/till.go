package ledger

// A till closes three ways: the cash the ledger says it holds (opening +
// replenished − collected − paid out), the cash the teller counts at the end
// of the day, and the difference between the two, booked to the post
// office's over/short account so that the till's balance is the counted
// cash again and the difference stays visible on the report.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	softatm "github.com/softatm/softatm"
)

// OverShortCode is post office P's over/short account: what its tills'
// counts found missing (debited) or in excess (credited).
func OverShortCode(postOffice string) string { return "po:" + postOffice + ":over_short" }

// countAttemptsMax bounds how often Count re-reads a till that moved (a
// payout landed) between its read and its commit before giving up with
// ErrBalanceMoved: a till that keeps moving is not closed for the day.
const countAttemptsMax = 3

// TillCountTransferID is the id of the over/short transfer of count id.
func TillCountTransferID(countID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(countID, []byte("over_short"))
}

// Collect books cash taken out of post office P's till (to the bank branch):
// debit settlement:bank_account, credit po:<P>:till. The till must exist
// (ENotFound) and hold the cash (ETillShort). id makes it idempotent.
func (l *Ledger) Collect(ctx context.Context, postOffice string, amount int64, currency string, id uuid.UUID) error {
	if postOffice == "" || id == uuid.Nil {
		return softatm.Errorf(softatm.EInvalid, "post office and id are required")
	}
	if amount <= 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "collected amount must be positive")
	}
	if err := l.EnsureAccount(ctx, AccountSettlement, currency, 0); err != nil {
		return err
	}
	_, err := l.Commit(ctx, Unit{Transfers: []Transfer{{ID: id, Debit: AccountSettlement, Credit: TillCode(postOffice),
		Amount: amount, Currency: currency, Kind: KindSingle}}})
	return err
}

// TillCount is a teller's end-of-day count of one till.
type TillCount struct {
	ID           uuid.UUID `json:"id"`
	PostOffice   string    `json:"post_office"`
	BusinessDate time.Time `json:"business_date"`
	Expected     int64     `json:"expected"`   // the till's posted balance the count was compared with
	Counted      int64     `json:"counted"`    // the cash the teller counted
	Difference   int64     `json:"difference"` // Counted − Expected: below zero short, above zero over
	Currency     string    `json:"currency"`
	CountedBy    string    `json:"counted_by"`
	CountedAt    time.Time `json:"counted_at"`
}

// Count records the teller's count of post office P's till for the
// business day it lands in (the cut-off rule, then the first open day) and
// books the difference from the till's posted balance: short by X, debit
// po:<P>:over_short, credit po:<P>:till; over, the reverse. A till is
// counted once per business day: a second count (another id) is an
// EConflict and changes nothing; the same id again returns the first
// count. The till must exist (ENotFound).
//
// The difference is computed from the balance read just before the commit,
// and the commit expects that balance (Unit.Expect): a payout landing in
// between refuses the count, which is then read and tried again, so the
// difference booked is always against the balance it was computed from.
func (l *Ledger) Count(ctx context.Context, postOffice string, counted int64, by string, id uuid.UUID) (TillCount, error) {
	if postOffice == "" || id == uuid.Nil || by == "" {
		return TillCount{}, softatm.Errorf(softatm.EInvalid, "post office, id and who counted are required")
	}
	if counted < 0 {
		return TillCount{}, softatm.Errorf(softatm.EInvalidAmount, "the counted cash cannot be negative")
	}
	if prior, ok, err := l.countByID(ctx, id); err != nil {
		return TillCount{}, err
	} else if ok {
		if prior.PostOffice != postOffice || prior.Counted != counted {
			return TillCount{}, softatm.Errorf(softatm.EConflict, "count %s was recorded with other figures", id)
		}
		return prior, nil
	}
	till, err := l.Account(ctx, TillCode(postOffice))
	if err != nil {
		return TillCount{}, err
	}
	if err := l.EnsureAccount(ctx, OverShortCode(postOffice), till.Currency, 0); err != nil {
		return TillCount{}, err
	}
	for attempt := 1; ; attempt++ {
		tc := TillCount{ID: id, PostOffice: postOffice, Expected: till.DebitsPosted - till.CreditsPosted,
			Counted: counted, Currency: till.Currency, CountedBy: by, CountedAt: l.opt.clock()}
		tc.Difference = tc.Counted - tc.Expected
		var ts []Transfer
		switch {
		case tc.Difference < 0:
			ts = []Transfer{{ID: TillCountTransferID(id), Debit: OverShortCode(postOffice), Credit: TillCode(postOffice),
				Amount: -tc.Difference, Currency: tc.Currency, Kind: KindSingle}}
		case tc.Difference > 0:
			ts = []Transfer{{ID: TillCountTransferID(id), Debit: TillCode(postOffice), Credit: OverShortCode(postOffice),
				Amount: tc.Difference, Currency: tc.Currency, Kind: KindSingle}}
		}
		res, err := l.Commit(ctx, Unit{At: tc.CountedAt,
			Apply: func(ctx context.Context, tx pgx.Tx, date time.Time) error {
				tag, err := tx.Exec(ctx, `INSERT INTO till_counts (id, post_office, business_date, expected, counted, currency, counted_by, counted_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
					tc.ID, tc.PostOffice, date, tc.Expected, tc.Counted, tc.Currency, tc.CountedBy, tc.CountedAt)
				if err != nil {
					return fmt.Errorf("recording the till count: %w", err)
				}
				if tag.RowsAffected() == 0 {
					return softatm.Errorf(softatm.EConflict, "the till of %s is already counted for business day %s",
						postOffice, date.Format(time.DateOnly))
				}
				return nil
			},
			Expect:    []Expect{{Account: TillCode(postOffice), Posted: tc.Expected}},
			Transfers: ts,
		})
		if errors.Is(err, ErrBalanceMoved) && attempt < countAttemptsMax {
			if till, err = l.Account(ctx, TillCode(postOffice)); err != nil {
				return TillCount{}, err
			}
			continue
		}
		if err != nil {
			return TillCount{}, err
		}
		tc.BusinessDate = res.BusinessDate
		return tc, nil
	}
}

const tillCountColumns = `id, post_office, business_date, expected, counted, currency, counted_by, counted_at`

func scanTillCount(row pgx.Row) (TillCount, error) {
	var tc TillCount
	err := row.Scan(&tc.ID, &tc.PostOffice, &tc.BusinessDate, &tc.Expected, &tc.Counted, &tc.Currency, &tc.CountedBy, &tc.CountedAt)
	tc.Difference = tc.Counted - tc.Expected
	return tc, err
}

func (l *Ledger) countByID(ctx context.Context, id uuid.UUID) (TillCount, bool, error) {
	tc, err := scanTillCount(l.pool.QueryRow(ctx, `SELECT `+tillCountColumns+` FROM till_counts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return TillCount{}, false, nil
	}
	if err != nil {
		return TillCount{}, false, fmt.Errorf("reading a till count: %w", err)
	}
	return tc, true, nil
}

// tillCounts returns the counts of business day d by post office.
func tillCounts(ctx context.Context, tx pgx.Tx, d time.Time) (map[string]TillCount, error) {
	rows, err := tx.Query(ctx, `SELECT `+tillCountColumns+` FROM till_counts WHERE business_date = $1`, d)
	if err != nil {
		return nil, fmt.Errorf("till counts: %w", err)
	}
	defer rows.Close()
	out := map[string]TillCount{}
	for rows.Next() {
		tc, err := scanTillCount(rows)
		if err != nil {
			return nil, fmt.Errorf("till counts: %w", err)
		}
		out[tc.PostOffice] = tc
	}
	return out, rows.Err()
}

// TillDay is one post office's till movements on one business day.
type TillDay struct {
	PostOffice  string
	Date        time.Time
	PaidOut     int64 // cash paid out to citizens (see PayoutTransfers)
	Replenished int64 // cash delivered into the till (Replenish)
}

// TillHistory returns every till's payouts and replenishments per
// business day from from to to, both included: the history a cash
// forecast is fitted to. Days with neither are left out.
func (l *Ledger) TillHistory(ctx context.Context, from, to time.Time) ([]TillDay, error) {
	rows, err := l.pool.Query(ctx, `SELECT a.code, t.business_date,
			COALESCE(sum(CASE WHEN t.credit_account_id = a.id AND o.code = $3 THEN t.amount END), 0)::BIGINT,
			COALESCE(sum(CASE WHEN t.debit_account_id = a.id AND o.code = $4 THEN t.amount END), 0)::BIGINT
		FROM accounts a
		JOIN transfers t ON (t.debit_account_id = a.id OR t.credit_account_id = a.id)
		JOIN accounts o ON o.id = CASE WHEN t.debit_account_id = a.id THEN t.credit_account_id ELSE t.debit_account_id END
		WHERE a.code LIKE 'po:%:till' AND t.kind = 'single' AND t.business_date BETWEEN $1 AND $2
		GROUP BY a.code, t.business_date
		ORDER BY a.code, t.business_date`, dateOf(from), dateOf(to), AccountInFlight, AccountSettlement)
	if err != nil {
		return nil, fmt.Errorf("till history: %w", err)
	}
	defer rows.Close()
	var out []TillDay
	for rows.Next() {
		var code string
		var d TillDay
		if err := rows.Scan(&code, &d.Date, &d.PaidOut, &d.Replenished); err != nil {
			return nil, fmt.Errorf("till history: %w", err)
		}
		po, ok := postOfficeOfTill(code)
		if !ok || (d.PaidOut == 0 && d.Replenished == 0) {
			continue
		}
		d.PostOffice = po
		out = append(out, d)
	}
	return out, rows.Err()
}

// Tills returns every post office's till account, by post office code.
func (l *Ledger) Tills(ctx context.Context) ([]Account, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts WHERE code LIKE 'po:%:till' ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("listing tills: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tills: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// TillPostOffice returns the post office of a till account's code.
func TillPostOffice(code string) (string, bool) { return postOfficeOfTill(code) }
