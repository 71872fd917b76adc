package ledger

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	softatm "github.com/softatm/softatm"
)

// BankTotal is what one bank owes for one business day.
type BankTotal struct {
	Bank     string `json:"bank"`
	Count    int64  `json:"count"`   // withdrawals paid on the day: holds posted into the day
	Gross    int64  `json:"gross"`   // the amounts posted: cash handed out on the bank's behalf
	Fees     int64  `json:"fees"`    // fee transfers booked against the bank on the day
	Net      int64  `json:"net"`     // what the bank owes: Gross + Fees (fees are charged to the bank)
	Settled  int64  `json:"settled"` // what SettleBank has recorded as paid for the day
	Currency string `json:"currency"`
}

// PostOfficeTotal is one post office's cash for one business day.
type PostOfficeTotal struct {
	PostOffice  string `json:"post_office"`
	Count       int64  `json:"count"`        // withdrawals paid there on the day: payouts out of its till
	CashOut     int64  `json:"cash_out"`     // their amounts
	TillOpening int64  `json:"till_opening"` // posted till balance before the day
	TillClosing int64  `json:"till_closing"` // posted till balance after the day
	Currency    string `json:"currency"`
}

// Report is the settlement report of one business day.
type Report struct {
	Date        time.Time         `json:"date"`
	Closed      bool              `json:"closed"`
	Banks       []BankTotal       `json:"banks"`
	PostOffices []PostOfficeTotal `json:"post_offices"`
}

// Settlement computes the settlement report of a business day from the
// ledger's own records alone: the day's transfers (posted holds, payouts,
// fees), the till balances and the bank settlements booked. It does not
// read the switch's withdrawals: a withdrawal is paid, as far as money
// goes, when its payout transfers are posted (see PayoutTransfers), and
// `softatm admin check` proves the two records agree. It reads in one
// transaction, so the figures are consistent with each other.
func (l *Ledger) Settlement(ctx context.Context, date time.Time) (Report, error) {
	d := dateOf(date)
	var rep Report
	err := RunTx(ctx, l.pool, l.opt.maxRetries, func(tx pgx.Tx) error {
		rep = Report{Date: d}
		bd, err := day(ctx, tx, d)
		if err != nil {
			return err
		}
		rep.Closed = bd.Closed
		if rep.Banks, err = bankTotals(ctx, tx, d); err != nil {
			return err
		}
		rep.PostOffices, err = postOfficeTotals(ctx, tx, d)
		return err
	})
	return rep, err
}

func bankTotals(ctx context.Context, tx pgx.Tx, d time.Time) ([]BankTotal, error) {
	type key struct{ bank, cur string }
	m := map[key]*BankTotal{}
	get := func(bank, cur string) *BankTotal {
		k := key{bank, cur}
		if m[k] == nil {
			m[k] = &BankTotal{Bank: bank, Currency: cur}
		}
		return m[k]
	}
	// A payout posts its hold (debit bank:<B>:receivable, credit
	// cashout:in_flight; a post_pending row carries the pending's accounts
	// and the posted amount), so the day's posted holds are the bank's
	// withdrawals paid on the day.
	rows, err := tx.Query(ctx, `SELECT d.code, t.currency, count(*), sum(t.amount)::BIGINT FROM transfers t
		JOIN accounts d ON d.id = t.debit_account_id
		JOIN accounts c ON c.id = t.credit_account_id
		WHERE t.business_date = $1 AND t.kind = $2 AND c.code = $3
		GROUP BY d.code, t.currency`, d, KindPostPending, AccountInFlight)
	if err != nil {
		return nil, fmt.Errorf("bank totals: %w", err)
	}
	for rows.Next() {
		var code, cur string
		var n, sum int64
		if err := rows.Scan(&code, &cur, &n, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("bank totals: %w", err)
		}
		if bank, ok := bankOfReceivable(code); ok {
			t := get(bank, cur)
			t.Count, t.Gross = t.Count+n, t.Gross+sum
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bank totals: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT d.code, t.currency, sum(t.amount)::BIGINT FROM transfers t
		JOIN accounts d ON d.id = t.debit_account_id
		JOIN accounts c ON c.id = t.credit_account_id
		WHERE t.business_date = $1 AND c.code = $2 AND t.kind IN ('single','post_pending')
		GROUP BY d.code, t.currency`, d, AccountFees)
	if err != nil {
		return nil, fmt.Errorf("fee totals: %w", err)
	}
	for rows.Next() {
		var code, cur string
		var sum int64
		if err := rows.Scan(&code, &cur, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("fee totals: %w", err)
		}
		if bank, ok := bankOfReceivable(code); ok {
			get(bank, cur).Fees += sum
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fee totals: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT bank, currency, sum(amount)::BIGINT FROM bank_settlements
		WHERE business_date = $1 GROUP BY bank, currency`, d)
	if err != nil {
		return nil, fmt.Errorf("settled totals: %w", err)
	}
	for rows.Next() {
		var bank, cur string
		var sum int64
		if err := rows.Scan(&bank, &cur, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("settled totals: %w", err)
		}
		get(bank, cur).Settled = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("settled totals: %w", err)
	}
	out := make([]BankTotal, 0, len(m))
	for _, t := range m {
		t.Net = t.Gross + t.Fees
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bank != out[j].Bank {
			return out[i].Bank < out[j].Bank
		}
		return out[i].Currency < out[j].Currency
	})
	return out, nil
}

func bankOfReceivable(code string) (string, bool) {
	s, ok := strings.CutPrefix(code, "bank:")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, ":receivable")
}

func postOfficeOfTill(code string) (string, bool) {
	s, ok := strings.CutPrefix(code, "po:")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, ":till")
}

func postOfficeTotals(ctx context.Context, tx pgx.Tx, d time.Time) ([]PostOfficeTotal, error) {
	type key struct{ po, cur string }
	m := map[key]*PostOfficeTotal{}
	get := func(po, cur string) *PostOfficeTotal {
		k := key{po, cur}
		if m[k] == nil {
			m[k] = &PostOfficeTotal{PostOffice: po, Currency: cur}
		}
		return m[k]
	}
	// A payout moves the cash out of the till: debit cashout:in_flight,
	// credit po:<P>:till (see PayoutTransfers).
	rows, err := tx.Query(ctx, `SELECT c.code, t.currency, count(*), sum(t.amount)::BIGINT FROM transfers t
		JOIN accounts d ON d.id = t.debit_account_id
		JOIN accounts c ON c.id = t.credit_account_id
		WHERE t.business_date = $1 AND t.kind = $2 AND d.code = $3
		GROUP BY c.code, t.currency`, d, KindSingle, AccountInFlight)
	if err != nil {
		return nil, fmt.Errorf("post office totals: %w", err)
	}
	for rows.Next() {
		var code, cur string
		var n, sum int64
		if err := rows.Scan(&code, &cur, &n, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("post office totals: %w", err)
		}
		if po, ok := postOfficeOfTill(code); ok {
			t := get(po, cur)
			t.Count, t.CashOut = t.Count+n, t.CashOut+sum
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("post office totals: %w", err)
	}
	// A till's posted balance is debits minus credits (cash in minus cash out).
	rows, err = tx.Query(ctx, `SELECT a.code, a.currency,
			COALESCE(sum(CASE WHEN t.business_date < $1 THEN
				CASE WHEN t.debit_account_id = a.id THEN t.amount ELSE -t.amount END ELSE 0 END), 0)::BIGINT,
			COALESCE(sum(CASE WHEN t.debit_account_id = a.id THEN t.amount ELSE -t.amount END), 0)::BIGINT
		FROM accounts a
		JOIN transfers t ON (t.debit_account_id = a.id OR t.credit_account_id = a.id)
		WHERE a.code LIKE 'po:%:till' AND t.kind IN ('single','post_pending') AND t.business_date <= $1
		GROUP BY a.code, a.currency`, d)
	if err != nil {
		return nil, fmt.Errorf("till balances: %w", err)
	}
	for rows.Next() {
		var code, cur string
		var opening, closing int64
		if err := rows.Scan(&code, &cur, &opening, &closing); err != nil {
			rows.Close()
			return nil, fmt.Errorf("till balances: %w", err)
		}
		if po, ok := postOfficeOfTill(code); ok {
			t := get(po, cur)
			t.TillOpening, t.TillClosing = opening, closing
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("till balances: %w", err)
	}
	out := make([]PostOfficeTotal, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PostOffice != out[j].PostOffice {
			return out[i].PostOffice < out[j].PostOffice
		}
		return out[i].Currency < out[j].Currency
	})
	return out, nil
}

// CSVHeader is the header WriteCSV writes. One table, with a "kind" column:
// "bank" rows fill bank, count, gross, fees, net, settled; "post_office" rows
// fill post_office, count, cash_out, till_opening, till_closing. Columns that
// do not apply to a row's kind are empty. Amounts are integer minor units.
var CSVHeader = []string{"kind", "business_date", "closed", "bank", "post_office", "count",
	"gross", "fees", "net", "settled", "cash_out", "till_opening", "till_closing", "currency"}

// WriteCSV writes the report as CSV (see CSVHeader).
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	date := r.Date.Format(time.DateOnly)
	closed := strconv.FormatBool(r.Closed)
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, b := range r.Banks {
		if err := cw.Write([]string{"bank", date, closed, b.Bank, "", n(b.Count),
			n(b.Gross), n(b.Fees), n(b.Net), n(b.Settled), "", "", "", b.Currency}); err != nil {
			return err
		}
	}
	for _, p := range r.PostOffices {
		if err := cw.Write([]string{"post_office", date, closed, "", p.PostOffice, n(p.Count),
			"", "", "", "", n(p.CashOut), n(p.TillOpening), n(p.TillClosing), p.Currency}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// SettleBank books a bank's payment for business day date: debit
// settlement:bank_account, credit bank:<bank>:receivable. id makes it
// idempotent. The settlement account is created if missing; the bank's
// receivable must exist.
func (l *Ledger) SettleBank(ctx context.Context, date time.Time, bank string, amount int64, currency string, id uuid.UUID) error {
	if bank == "" || id == uuid.Nil {
		return softatm.Errorf(softatm.EInvalid, "bank and id are required")
	}
	if amount <= 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "settlement amount must be positive")
	}
	if err := l.EnsureAccount(ctx, AccountSettlement, currency, 0); err != nil {
		return err
	}
	d := dateOf(date)
	_, err := l.Commit(ctx, Unit{
		Apply: func(ctx context.Context, tx pgx.Tx, _ time.Time) error {
			// A conflicting retry (same id, other amount) is refused by the
			// transfer below, which rolls this insert back with it.
			_, err := tx.Exec(ctx, `INSERT INTO bank_settlements (id, bank, business_date, amount, currency)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`, id, bank, d, amount, currency)
			return err
		},
		Transfers: []Transfer{{ID: id, Debit: AccountSettlement, Credit: ReceivableCode(bank),
			Amount: amount, Currency: currency, Kind: KindSingle}},
	})
	return err
}

// Replenish books cash put into a post office's till: debit po:<P>:till,
// credit settlement:bank_account. The till (with
// FlagCreditsMustNotExceedDebits) and the settlement account are created if
// missing.
func (l *Ledger) Replenish(ctx context.Context, postOffice string, amount int64, currency string, id uuid.UUID) error {
	if postOffice == "" || id == uuid.Nil {
		return softatm.Errorf(softatm.EInvalid, "post office and id are required")
	}
	if amount <= 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "replenish amount must be positive")
	}
	if err := l.EnsureAccount(ctx, AccountSettlement, currency, 0); err != nil {
		return err
	}
	if err := l.EnsureAccount(ctx, TillCode(postOffice), currency, FlagCreditsMustNotExceedDebits); err != nil {
		return err
	}
	_, err := l.Commit(ctx, Unit{Transfers: []Transfer{{ID: id, Debit: TillCode(postOffice), Credit: AccountSettlement,
		Amount: amount, Currency: currency, Kind: KindSingle}}})
	return err
}
