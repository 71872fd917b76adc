package ledger

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
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
	Bank        string `json:"bank"`
	Count       int64  `json:"count"`       // withdrawals paid on the day: holds posted into the day
	Gross       int64  `json:"gross"`       // the amounts posted: cash handed out on the bank's behalf
	Fees        int64  `json:"fees"`        // fee transfers booked against the bank on the day
	Net         int64  `json:"net"`         // what the bank owes: Gross + Fees − Deposits (below zero: the switch owes the bank)
	Settled     int64  `json:"settled"`     // what SettleBank has recorded as paid for the day
	Outstanding int64  `json:"outstanding"` // Net − Settled: still owed (below zero: paid too much)
	Currency    string `json:"currency"`
	// DepositCount and Deposits are the bank's deposits credited on the
	// day: cash taken in at post offices that the switch owes the bank
	// (DepositTransfer), netted against Gross in Net. Both gross figures
	// stay on the report.
	DepositCount int64 `json:"deposit_count"`
	Deposits     int64 `json:"deposits"`
}

// PostOfficeTotal is one post office's cash for one business day. The
// figures come from the same transfers, so they always add up:
//
//	TillOpening + Replenished − Collected − CashOut + CashIn + OverShort + Other = TillClosing
//
// and, when the teller counted the till, Counted = the balance the count was
// compared with + OverShort of that count (the count's difference).
type PostOfficeTotal struct {
	PostOffice  string `json:"post_office"`
	Count       int64  `json:"count"`        // withdrawals paid there on the day: payouts out of its till
	TillOpening int64  `json:"till_opening"` // posted till balance before the day
	Replenished int64  `json:"replenished"`  // cash put into the till (from the bank branch)
	Collected   int64  `json:"collected"`    // cash taken out of the till (to the bank branch)
	CashOut     int64  `json:"cash_out"`     // cash paid out to citizens
	OverShort   int64  `json:"over_short"`   // the count's difference booked on the day: below zero short, above zero over
	Other       int64  `json:"other"`        // any other movement of the till, net (none today; cash-in when it exists)
	TillClosing int64  `json:"till_closing"` // posted till balance after the day
	// Counted is the teller's count for the day, nil when not counted yet.
	Counted   *int64 `json:"counted"`
	CountedBy string `json:"counted_by,omitempty"`
	Currency  string `json:"currency"`
	// DepositCount and CashIn are the deposits taken into the till on the
	// day (DepositTransfer: the till debited, a bank's payable credited).
	DepositCount int64 `json:"deposit_count"`
	CashIn       int64 `json:"cash_in"`
}

// Report is the settlement report of one business day. BankTotals and
// PostOfficeTotals hold one row per currency summing the rows above them
// (Bank and PostOffice empty; Counted is the sum of the counts made).
type Report struct {
	Date             time.Time         `json:"date"`
	Closed           bool              `json:"closed"`
	Banks            []BankTotal       `json:"banks"`
	PostOffices      []PostOfficeTotal `json:"post_offices"`
	BankTotals       []BankTotal       `json:"bank_totals"`
	PostOfficeTotals []PostOfficeTotal `json:"post_office_totals"`
}

// currencyNames maps ISO 4217 numeric codes, as the switch books them
// (field 49), to the alphabetic code people read. A currency not listed is
// shown as booked.
var currencyNames = map[string]string{"704": "VND"}

// CurrencyName returns the alphabetic ISO 4217 code of a currency as booked.
func CurrencyName(c string) string {
	if n, ok := currencyNames[c]; ok {
		return n
	}
	return c
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
		if rep.PostOffices, err = postOfficeTotals(ctx, tx, d); err != nil {
			return err
		}
		rep.BankTotals, rep.PostOfficeTotals = totals(rep.Banks, rep.PostOffices)
		return nil
	})
	return rep, err
}

// totals sums the report's rows per currency.
func totals(banks []BankTotal, pos []PostOfficeTotal) ([]BankTotal, []PostOfficeTotal) {
	bt := []BankTotal{}
	for _, b := range banks {
		i := slices.IndexFunc(bt, func(t BankTotal) bool { return t.Currency == b.Currency })
		if i < 0 {
			bt = append(bt, BankTotal{Currency: b.Currency})
			i = len(bt) - 1
		}
		t := &bt[i]
		t.Count += b.Count
		t.Gross += b.Gross
		t.Fees += b.Fees
		t.Net += b.Net
		t.Settled += b.Settled
		t.Outstanding += b.Outstanding
		t.DepositCount += b.DepositCount
		t.Deposits += b.Deposits
	}
	pt := []PostOfficeTotal{}
	for _, p := range pos {
		i := slices.IndexFunc(pt, func(t PostOfficeTotal) bool { return t.Currency == p.Currency })
		if i < 0 {
			pt = append(pt, PostOfficeTotal{Currency: p.Currency})
			i = len(pt) - 1
		}
		t := &pt[i]
		t.Count += p.Count
		t.TillOpening += p.TillOpening
		t.Replenished += p.Replenished
		t.Collected += p.Collected
		t.CashOut += p.CashOut
		t.OverShort += p.OverShort
		t.Other += p.Other
		t.DepositCount += p.DepositCount
		t.CashIn += p.CashIn
		t.TillClosing += p.TillClosing
		if p.Counted != nil {
			c := *p.Counted
			if t.Counted != nil {
				c += *t.Counted
			}
			t.Counted = &c
		}
	}
	return bt, pt
}

func bankTotals(ctx context.Context, tx pgx.Tx, d time.Time) ([]BankTotal, error) {
	type key struct{ bank, cur string }
	m := map[key]*BankTotal{}
	get := func(bank, cur string) *BankTotal {
		cur = CurrencyName(cur)
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
	if err := eachTotal(ctx, tx, "bank totals", `SELECT d.code, t.currency, count(*), sum(t.amount)::BIGINT FROM transfers t
		JOIN accounts d ON d.id = t.debit_account_id
		JOIN accounts c ON c.id = t.credit_account_id
		WHERE t.business_date = $1 AND t.kind = $2 AND c.code = $3
		GROUP BY d.code, t.currency`, []any{d, KindPostPending, AccountInFlight}, func(code, cur string, n, sum int64) {
		if bank, ok := bankOfReceivable(code); ok {
			t := get(bank, cur)
			t.Count, t.Gross = t.Count+n, t.Gross+sum
		}
	}); err != nil {
		return nil, err
	}
	if err := eachTotal(ctx, tx, "fee totals", `SELECT d.code, t.currency, count(*), sum(t.amount)::BIGINT FROM transfers t
		JOIN accounts d ON d.id = t.debit_account_id
		JOIN accounts c ON c.id = t.credit_account_id
		WHERE t.business_date = $1 AND c.code = $2 AND t.kind IN ('single','post_pending')
		GROUP BY d.code, t.currency`, []any{d, AccountFees}, func(code, cur string, _, sum int64) {
		if bank, ok := bankOfReceivable(code); ok {
			get(bank, cur).Fees += sum
		}
	}); err != nil {
		return nil, err
	}
	// A credited deposit is one transfer from a till into the bank's
	// payable (DepositTransfer).
	if err := eachTotal(ctx, tx, "deposit totals", `SELECT c.code, t.currency, count(*), sum(t.amount)::BIGINT FROM transfers t
		JOIN accounts d ON d.id = t.debit_account_id
		JOIN accounts c ON c.id = t.credit_account_id
		WHERE t.business_date = $1 AND t.kind = $2 AND c.code LIKE 'bank:%:payable' AND d.code LIKE 'po:%:till'
		GROUP BY c.code, t.currency`, []any{d, KindSingle}, func(code, cur string, n, sum int64) {
		if bank, ok := bankOfPayable(code); ok {
			t := get(bank, cur)
			t.DepositCount, t.Deposits = t.DepositCount+n, t.Deposits+sum
		}
	}); err != nil {
		return nil, err
	}
	if err := eachTotal(ctx, tx, "settled totals", `SELECT bank, currency, count(*), sum(amount)::BIGINT FROM bank_settlements
		WHERE business_date = $1 GROUP BY bank, currency`, []any{d}, func(bank, cur string, _, sum int64) {
		get(bank, cur).Settled += sum
	}); err != nil {
		return nil, err
	}
	out := make([]BankTotal, 0, len(m))
	for _, t := range m {
		t.Net = t.Gross + t.Fees - t.Deposits
		t.Outstanding = t.Net - t.Settled
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

// eachTotal runs a query of (code, currency, count, sum) rows and hands
// each row to fn; what names the totals in errors.
func eachTotal(ctx context.Context, tx pgx.Tx, what, sql string, args []any, fn func(code, cur string, n, sum int64)) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err == nil {
		var code, cur string
		var n, sum int64
		_, err = pgx.ForEachRow(rows, []any{&code, &cur, &n, &sum}, func() error {
			fn(code, cur, n, sum)
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// bankOfPayable returns the bank of a PayableCode.
func bankOfPayable(code string) (string, bool) {
	s, ok := strings.CutPrefix(code, "bank:")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, ":payable")
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
		cur = CurrencyName(cur)
		k := key{po, cur}
		if m[k] == nil {
			m[k] = &PostOfficeTotal{PostOffice: po, Currency: cur}
		}
		return m[k]
	}
	// Every posted movement of a till on the day, by what is on the other
	// side: the settlement account (replenished, collected), in-flight
	// (paid out: see PayoutTransfers), the post office's over/short
	// account (a count's difference), or anything else.
	rows, err := tx.Query(ctx, `SELECT a.code, t.currency, o.code, t.debit_account_id = a.id, t.kind, count(*), sum(t.amount)::BIGINT
		FROM accounts a
		JOIN transfers t ON (t.debit_account_id = a.id OR t.credit_account_id = a.id)
		JOIN accounts o ON o.id = CASE WHEN t.debit_account_id = a.id THEN t.credit_account_id ELSE t.debit_account_id END
		WHERE a.code LIKE 'po:%:till' AND t.kind IN ('single','post_pending') AND t.business_date = $1
		GROUP BY a.code, t.currency, o.code, t.debit_account_id = a.id, t.kind`, d)
	if err != nil {
		return nil, fmt.Errorf("post office totals: %w", err)
	}
	for rows.Next() {
		var code, cur, other string
		var into bool
		var kind Kind
		var n, sum int64
		if err := rows.Scan(&code, &cur, &other, &into, &kind, &n, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("post office totals: %w", err)
		}
		po, ok := postOfficeOfTill(code)
		if !ok {
			continue
		}
		t := get(po, cur)
		switch {
		case other == AccountSettlement && into:
			t.Replenished += sum
		case other == AccountSettlement:
			t.Collected += sum
		case other == AccountInFlight && !into && kind == KindSingle:
			t.Count, t.CashOut = t.Count+n, t.CashOut+sum
		case into && kind == KindSingle && strings.HasPrefix(other, "bank:") && strings.HasSuffix(other, ":payable"):
			t.DepositCount, t.CashIn = t.DepositCount+n, t.CashIn+sum
		case other == OverShortCode(po) && into:
			t.OverShort += sum
		case other == OverShortCode(po):
			t.OverShort -= sum
		case into:
			t.Other += sum
		default:
			t.Other -= sum
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
	counts, err := tillCounts(ctx, tx, d)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		t := get(c.PostOffice, c.Currency)
		t.Counted, t.CountedBy = &c.Counted, c.CountedBy
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
// "bank" rows fill bank, count, gross, fees, net, settled, outstanding;
// "post_office" rows fill post_office, count and the till columns
// (till_opening + replenished − collected − cash_out + over_short + other =
// till_closing; counted empty when the till was not counted). A
// "bank_total" and a "post_office_total" row per currency follow their
// rows with the sums. The last two columns are cash in: a bank row's
// deposits credited for it (its net is gross + fees − cash_in), a post
// office row's deposits taken into its till (its till adds cash_in).
// Columns that do not apply to a row's kind are empty.
// Amounts are integer units of the currency (dong for VND), the currency
// its ISO 4217 letters. These are the page's numbers: both come from
// Settlement.
var CSVHeader = []string{"kind", "business_date", "closed", "bank", "post_office", "count",
	"gross", "fees", "net", "settled", "outstanding",
	"till_opening", "replenished", "collected", "cash_out", "over_short", "other", "till_closing", "counted", "currency",
	"deposit_count", "cash_in"}

// WriteCSV writes the report as CSV (see CSVHeader).
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	date := r.Date.Format(time.DateOnly)
	closed := strconv.FormatBool(r.Closed)
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	bank := func(kind string, b BankTotal) []string {
		return []string{kind, date, closed, b.Bank, "", n(b.Count),
			n(b.Gross), n(b.Fees), n(b.Net), n(b.Settled), n(b.Outstanding),
			"", "", "", "", "", "", "", "", b.Currency, n(b.DepositCount), n(b.Deposits)}
	}
	po := func(kind string, p PostOfficeTotal) []string {
		counted := ""
		if p.Counted != nil {
			counted = n(*p.Counted)
		}
		return []string{kind, date, closed, "", p.PostOffice, n(p.Count),
			"", "", "", "", "",
			n(p.TillOpening), n(p.Replenished), n(p.Collected), n(p.CashOut), n(p.OverShort), n(p.Other),
			n(p.TillClosing), counted, p.Currency, n(p.DepositCount), n(p.CashIn)}
	}
	var recs [][]string
	for _, b := range r.Banks {
		recs = append(recs, bank("bank", b))
	}
	for _, b := range r.BankTotals {
		recs = append(recs, bank("bank_total", b))
	}
	for _, p := range r.PostOffices {
		recs = append(recs, po("post_office", p))
	}
	for _, p := range r.PostOfficeTotals {
		recs = append(recs, po("post_office_total", p))
	}
	if err := cw.WriteAll(recs); err != nil {
		return err
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
