// Package recon reconciles a bank's settlement file with the switch's own
// record of a business day: it imports the file (one file per bank and
// business date, which the file names in its first records; the same bytes
// are imported once), matches every line against the withdrawals paid that
// day for that bank, and lists each as matched or as an exception that
// finance resolves by hand with a reason. Nothing is fixed automatically.
//
// Before the bank's file for a day is imported, the day's payouts are
// awaiting_bank_file: nothing is missing yet. Then matching is by RRN
// (ISO 8583 field 37), which the switch keeps unique. A line whose RRN is
// found among the day's paid withdrawals is matched when amount, currency,
// STAN and approval code agree; a different amount or currency is
// amount_differs, a different STAN or approval code field_mismatch. Every
// further line with the same RRN is a duplicate. A line the switch paid on
// another business day, or a payout the bank filed under another day, is
// date_differs (the two sides drew the cut-off differently); otherwise
// missing_at_switch or missing_at_bank. The line type is recorded but not
// interpreted. All lines imported for a bank and day take part, from every
// file: a corrected file that repeats lines adds only its new ones.
//
// The switch's side of the day comes through the Lines interface, which the
// switch implements (atmswitch.ReconLines) and cmd wires in: recon reads
// only its own tables (recon_files, recon_lines, recon_items) and owns
// their migrations (Migrations). A report reads the bank's lines, then the
// switch's record, then stores its items: not one snapshot, but an item's
// id is derived from what it is about, so a report that races an import
// is completed by the next one.
//
// This package must not import the switch package; of this module it
// imports only softatm, ledger (for RunTx) and ledger/schema.
package recon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	softatm "github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// Status is the outcome of reconciling one line or withdrawal.
type Status string

// Statuses.
const (
	StatusMatched         Status = "matched"
	StatusMissingAtBank   Status = "missing_at_bank"   // the switch paid it, the file lacks it
	StatusMissingAtSwitch Status = "missing_at_switch" // the file has it, the switch did not pay it that day
	StatusAmountDiffers   Status = "amount_differs"    // amount or currency differ
	StatusFieldMismatch   Status = "field_mismatch"    // STAN or approval code differ
	StatusDateDiffers     Status = "date_differs"      // the other side has it under another business date (cut-off)
	StatusDuplicate       Status = "duplicate"         // the RRN appears again in the file(s)
	// StatusAwaitingBankFile: the bank's file for the day has not been
	// imported yet, so nothing can be said to be missing. It is shown,
	// never stored.
	StatusAwaitingBankFile Status = "awaiting_bank_file"
)

// maxRetries bounds the re-runs of a recon transaction.
const maxRetries = ledger.DefaultMaxRetries

// SwitchLine is one withdrawal as the switch recorded it: what a bank's
// line is matched against.
type SwitchLine struct {
	WithdrawalID uuid.UUID
	Bank         string
	RRN          string
	STAN         string
	ApprovalCode string
	Amount       int64
	Currency     string
	// State is the switch's word for where the withdrawal is; recon shows
	// it to finance and does not interpret it.
	State string
	// BusinessDate is the day the cash was handed out; zero if it was not.
	BusinessDate time.Time
}

// Lines is the switch's record of withdrawals, as reconciliation reads it.
// The switch implements it; recon never reads the switch's tables.
type Lines interface {
	// Lines returns the withdrawals of bank whose cash was handed out on
	// business day date, in RRN order.
	Lines(ctx context.Context, bank string, date time.Time) ([]SwitchLine, error)
	// ByRRN returns the withdrawal the switch has under rrn, whatever its
	// bank, state or day; ok is false when it has none.
	ByRRN(ctx context.Context, rrn string) (line SwitchLine, ok bool, err error)
	// KnownBank reports whether bank is a bank the switch serves.
	KnownBank(ctx context.Context, bank string) (bool, error)
}

// Store keeps imported files and reconciliation items in PostgreSQL or
// CockroachDB.
type Store struct {
	pool     *pgxpool.Pool
	switches Lines
}

// New returns a store on pool that reads the switch's record through lines.
func New(pool *pgxpool.Pool, lines Lines) *Store { return &Store{pool: pool, switches: lines} }

// ImportResult describes an import.
type ImportResult struct {
	FileID     uuid.UUID `json:"file_id"`
	Bank       string    `json:"bank"`
	Date       time.Time `json:"date"`
	Name       string    `json:"name"`
	SHA256     string    `json:"sha256"`
	Lines      int       `json:"lines"`     // lines in the file
	NewLines   int       `json:"new_lines"` // lines not known from an earlier file of the same bank and day
	ImportedAt time.Time `json:"imported_at"`
}

// Item is one reconciliation result.
type Item struct {
	ID           uuid.UUID `json:"id"`
	Status       Status    `json:"status"`
	RRN          string    `json:"rrn"`
	STAN         string    `json:"stan"`
	ApprovalCode string    `json:"approval_code"`
	BankAmount   int64     `json:"bank_amount"`
	SwitchAmount int64     `json:"switch_amount"`
	WithdrawalID uuid.UUID `json:"withdrawal_id"`
	Detail       string    `json:"detail"` // why it is an exception, in words
	Resolved     bool      `json:"resolved"`
	ResolvedBy   string    `json:"resolved_by"`
	Reason       string    `json:"reason"`
}

// ns derives recon ids: an id is a function of what it names, so that
// repeating an import or a report finds the same rows.
var ns = uuid.MustParse("6f1d2a3c-52a4-4b8e-9c1e-0d7c3b9a5e10")

func dateOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func dayKey(bank string, d time.Time) string { return bank + "|" + d.Format(time.DateOnly) }

// Import parses content, a bank's settlement file, and stores its lines.
// The bank and the business date are the file's own (its bank record);
// bank and date, when given (the page's bank and day), must be the file's:
// a file of another bank (EFileOtherBank) or day (EFileOtherDate) is
// refused, not filed under the wrong one. A file of the older layout names
// neither and is imported for the bank and date given (both needed). The
// bank must be known. A file with bad lines is refused whole, every bad
// line listed (EFileInvalid). The same bytes imported before, for any bank
// or day, are refused with EFileImported, whose message says when.
func (s *Store) Import(ctx context.Context, bank string, date time.Time, name string, content []byte) (ImportResult, error) {
	f, err := ParseFile(bytes.NewReader(content))
	if err != nil {
		return ImportResult{}, err
	}
	lines := f.Lines
	switch {
	case f.Bank == "" && (bank == "" || date.IsZero()):
		return ImportResult{}, softatm.Errorf(softatm.EInvalid, "the file does not name its bank and business date: choose both")
	case f.Bank == "":
		f.Bank, f.Date = bank, date
	case bank != "" && bank != f.Bank:
		return ImportResult{}, softatm.Errorf(softatm.EFileOtherBank, "this is bank %s's settlement file, not %s's", f.Bank, bank)
	case !date.IsZero() && !dateOf(date).Equal(dateOf(f.Date)):
		return ImportResult{}, softatm.Errorf(softatm.EFileOtherDate, "this file is of business date %s, not %s",
			f.Date.Format(time.DateOnly), date.Format(time.DateOnly))
	}
	bank = f.Bank
	d := dateOf(f.Date)
	sum := sha256.Sum256(content)
	res := ImportResult{Bank: bank, Date: d, Name: name, SHA256: hex.EncodeToString(sum[:]), Lines: len(lines)}
	res.FileID = uuid.NewSHA1(ns, []byte("file|"+dayKey(bank, d)+"|"+res.SHA256))
	known, err := s.switches.KnownBank(ctx, bank)
	if err != nil {
		return ImportResult{}, fmt.Errorf("reading bank: %w", err)
	}
	if !known {
		return ImportResult{}, softatm.Errorf(softatm.ENotFound, "unknown bank %q", bank)
	}
	err = ledger.RunTx(ctx, s.pool, maxRetries, func(tx pgx.Tx) error {
		var prior ImportResult
		err := tx.QueryRow(ctx, `SELECT bank, business_date, name, line_count, imported_at FROM recon_files
			WHERE sha256 = $1 ORDER BY imported_at LIMIT 1`, res.SHA256).
			Scan(&prior.Bank, &prior.Date, &prior.Name, &prior.Lines, &prior.ImportedAt)
		if err == nil {
			return softatm.Errorf(softatm.EFileImported, "this file was already imported on %s (%q: bank %s, business date %s, %d lines): nothing changed",
				prior.ImportedAt.In(ictZone).Format("2006-01-02 15:04"), prior.Name, prior.Bank, prior.Date.Format(time.DateOnly), prior.Lines)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading recon file: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO recon_files (id, bank, business_date, name, sha256, line_count, new_lines)
			VALUES ($1, $2, $3, $4, $5, $6, 0)`, res.FileID, bank, d, name, res.SHA256, len(lines)); err != nil {
			return fmt.Errorf("storing recon file: %w", err)
		}
		occurrence := map[string]int{}
		newLines := 0
		for _, l := range lines {
			content := fmt.Sprintf("%s|%s|%s|%d|%s|%s|%s", l.RRN, l.STAN, l.ApprovalCode, l.Amount, l.Currency,
				l.Time.UTC().Format(time.RFC3339Nano), l.Type)
			occurrence[content]++
			id := uuid.NewSHA1(ns, []byte("line|"+dayKey(bank, d)+"|"+content+"|"+strconv.Itoa(occurrence[content])))
			tag, err := tx.Exec(ctx, `INSERT INTO recon_lines (id, bank, business_date, file_id, line_no, rrn, stan,
				approval_code, amount, currency, transaction_time, type)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
				id, bank, d, res.FileID, l.LineNo, l.RRN, l.STAN, l.ApprovalCode, l.Amount, l.Currency, l.Time, l.Type)
			if err != nil {
				return fmt.Errorf("storing recon line %d: %w", l.LineNo, err)
			}
			newLines += int(tag.RowsAffected())
		}
		res.NewLines = newLines
		return tx.QueryRow(ctx, `UPDATE recon_files SET new_lines = $2 WHERE id = $1 RETURNING imported_at`,
			res.FileID, newLines).Scan(&res.ImportedAt)
	})
	if err != nil {
		return ImportResult{}, err
	}
	return res, nil
}

// ictZone is the zone import times are told in (Vietnam has no DST).
var ictZone = time.FixedZone("ICT", 7*3600)

type fileLine struct {
	id                       uuid.UUID
	rrn, stan, approval, cur string
	amount                   int64
}

// Report reconciles bank's imported lines for business day date with the
// withdrawals of that bank whose cash was handed out on that day, as the
// switch's Lines tells them, stores the
// items (keeping earlier resolutions) and returns them, exceptions first.
func (s *Store) Report(ctx context.Context, bank string, date time.Time) ([]Item, error) {
	d := dateOf(date)
	var lines []fileLine
	err := ledger.RunTx(ctx, s.pool, maxRetries, func(tx pgx.Tx) error {
		var err error
		lines, err = loadLines(ctx, tx, bank, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	ws, err := s.switches.Lines(ctx, bank, d)
	if err != nil {
		return nil, fmt.Errorf("reading the switch's lines: %w", err)
	}
	if err := checkSwitchLines(bank, d, ws); err != nil {
		return nil, err
	}
	var files int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM recon_files WHERE bank = $1 AND business_date = $2`, bank, d).
		Scan(&files); err != nil {
		return nil, fmt.Errorf("reading recon files: %w", err)
	}
	if files == 0 {
		// No file yet: nothing is missing, the day is waiting.
		items := make([]Item, 0, len(ws))
		for _, w := range ws {
			items = append(items, Item{ID: itemID(bank, d, StatusAwaitingBankFile, w.WithdrawalID), Status: StatusAwaitingBankFile,
				RRN: w.RRN, STAN: w.STAN, ApprovalCode: w.ApprovalCode, SwitchAmount: w.Amount, WithdrawalID: w.WithdrawalID,
				Detail: "the bank's settlement file for this day has not been imported yet"})
		}
		return items, nil
	}
	items := match(bank, d, lines, ws)
	if err := s.explainMissingAtSwitch(ctx, bank, d, items); err != nil {
		return nil, err
	}
	if err := s.explainMissingAtBank(ctx, bank, d, items); err != nil {
		return nil, err
	}
	err = ledger.RunTx(ctx, s.pool, maxRetries, func(tx pgx.Tx) error {
		return storeItems(ctx, tx, bank, d, items)
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(items, func(i, j int) bool {
		if (items[i].Status == StatusMatched) != (items[j].Status == StatusMatched) {
			return items[j].Status == StatusMatched
		}
		return items[i].RRN < items[j].RRN
	})
	return items, nil
}

func loadLines(ctx context.Context, tx pgx.Tx, bank string, d time.Time) ([]fileLine, error) {
	rows, err := tx.Query(ctx, `SELECT l.id, l.rrn, l.stan, l.approval_code, l.amount, l.currency
		FROM recon_lines l JOIN recon_files f ON f.id = l.file_id
		WHERE l.bank = $1 AND l.business_date = $2 ORDER BY f.imported_at, f.id, l.line_no`, bank, d)
	if err != nil {
		return nil, fmt.Errorf("reading recon lines: %w", err)
	}
	defer rows.Close()
	var out []fileLine
	for rows.Next() {
		var l fileLine
		if err := rows.Scan(&l.id, &l.rrn, &l.stan, &l.approval, &l.amount, &l.cur); err != nil {
			return nil, fmt.Errorf("reading recon lines: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// checkSwitchLines asserts what Report relies on in the switch's answer:
// every line is of the bank and day asked for, has a withdrawal id and an
// RRN, and no RRN comes twice (match keys the lines by RRN, so a second
// one would silently hide the first). A broken answer is a bug in the
// switch: nothing is stored.
func checkSwitchLines(bank string, d time.Time, ws []SwitchLine) error {
	seen := make(map[string]bool, len(ws))
	for _, w := range ws {
		switch {
		case w.Bank != bank || !dateOf(w.BusinessDate).Equal(d):
			return softatm.Errorf(softatm.EInternal, "the switch answered for bank %s day %s with a line of bank %s day %s (RRN %s)",
				bank, d.Format(time.DateOnly), w.Bank, w.BusinessDate.Format(time.DateOnly), w.RRN)
		case w.RRN == "" || w.WithdrawalID == uuid.Nil:
			return softatm.Errorf(softatm.EInternal, "the switch answered with a line without RRN or withdrawal id")
		case seen[w.RRN]:
			return softatm.Errorf(softatm.EInternal, "the switch answered with RRN %s twice", w.RRN)
		}
		seen[w.RRN] = true
	}
	return nil
}

func itemID(bank string, d time.Time, st Status, key uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(ns, []byte("item|"+dayKey(bank, d)+"|"+string(st)+"|"+key.String()))
}

// match is the pure matching rule (see the package comment).
func match(bank string, d time.Time, lines []fileLine, ws []SwitchLine) []Item {
	byRRN := make(map[string]SwitchLine, len(ws))
	for _, w := range ws {
		byRRN[w.RRN] = w
	}
	seen := map[string]bool{}
	var items []Item
	for _, l := range lines {
		it := Item{RRN: l.rrn, STAN: l.stan, ApprovalCode: l.approval, BankAmount: l.amount}
		w, ok := byRRN[l.rrn]
		if ok {
			it.WithdrawalID, it.SwitchAmount = w.WithdrawalID, w.Amount
		}
		switch {
		case seen[l.rrn]:
			it.Status, it.Detail = StatusDuplicate, "the RRN appears more than once in the bank's file"
		case !ok:
			it.Status, it.Detail = StatusMissingAtSwitch, "no withdrawal of this bank paid on this day has this RRN"
		case l.amount != w.Amount || l.cur != w.Currency:
			it.Status = StatusAmountDiffers
			it.Detail = fmt.Sprintf("bank %d %s, switch %d %s", l.amount, l.cur, w.Amount, w.Currency)
		case l.stan != w.STAN || l.approval != w.ApprovalCode:
			it.Status = StatusFieldMismatch
			it.Detail = fmt.Sprintf("bank STAN %s approval %s, switch STAN %s approval %s", l.stan, l.approval, w.STAN, w.ApprovalCode)
		default:
			it.Status = StatusMatched
		}
		seen[l.rrn] = true
		it.ID = itemID(bank, d, it.Status, l.id)
		items = append(items, it)
	}
	for _, w := range ws {
		if seen[w.RRN] {
			continue
		}
		items = append(items, Item{ID: itemID(bank, d, StatusMissingAtBank, w.WithdrawalID), Status: StatusMissingAtBank,
			RRN: w.RRN, STAN: w.STAN, ApprovalCode: w.ApprovalCode, SwitchAmount: w.Amount, WithdrawalID: w.WithdrawalID,
			Detail: "the switch paid it; the bank's file lacks it"})
	}
	return items
}

// explainMissingAtSwitch says, for a line the day does not have, what the
// switch knows of its RRN (another day, another state, another bank). A
// payout of the same bank that the switch dated another business day is
// date_differs: the two sides drew the cut-off differently.
func (s *Store) explainMissingAtSwitch(ctx context.Context, bank string, d time.Time, items []Item) error {
	for i := range items {
		it := &items[i]
		if it.Status != StatusMissingAtSwitch {
			continue
		}
		w, ok, err := s.switches.ByRRN(ctx, it.RRN)
		if err != nil {
			return fmt.Errorf("looking up RRN: %w", err)
		}
		if !ok {
			it.Detail = "the switch has no withdrawal with this RRN"
			continue
		}
		if w.RRN != it.RRN {
			return softatm.Errorf(softatm.EInternal, "the switch answered RRN %s with RRN %s", it.RRN, w.RRN)
		}
		it.WithdrawalID, it.SwitchAmount = w.WithdrawalID, w.Amount
		day := "no business date"
		if !w.BusinessDate.IsZero() {
			day = "business date " + w.BusinessDate.Format(time.DateOnly)
		}
		it.Detail = fmt.Sprintf("the switch has it for bank %s in state %s, %s", w.Bank, w.State, day)
		if w.Bank == bank && !w.BusinessDate.IsZero() && !dateOf(w.BusinessDate).Equal(d) {
			it.Status = StatusDateDiffers
			it.Detail = fmt.Sprintf("the bank's file of %s has it; the switch paid it on business date %s (cut-off)",
				d.Format(time.DateOnly), w.BusinessDate.Format(time.DateOnly))
			it.ID = itemID(bank, d, it.Status, it.WithdrawalID)
		}
	}
	return nil
}

// explainMissingAtBank finds, for a payout the day's file lacks, the
// bank's file of another day that has it: date_differs.
func (s *Store) explainMissingAtBank(ctx context.Context, bank string, d time.Time, items []Item) error {
	for i := range items {
		it := &items[i]
		if it.Status != StatusMissingAtBank {
			continue
		}
		var other time.Time
		err := s.pool.QueryRow(ctx, `SELECT business_date FROM recon_lines WHERE bank = $1 AND rrn = $2 AND business_date <> $3
			ORDER BY business_date LIMIT 1`, bank, it.RRN, d).Scan(&other)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("looking up RRN in other days' files: %w", err)
		}
		it.Status = StatusDateDiffers
		it.Detail = fmt.Sprintf("the switch paid it on business date %s; the bank's file of %s has it (cut-off)",
			d.Format(time.DateOnly), other.Format(time.DateOnly))
		it.ID = itemID(bank, d, it.Status, it.WithdrawalID)
	}
	return nil
}

func storeItems(ctx context.Context, tx pgx.Tx, bank string, d time.Time, items []Item) error {
	for i := range items {
		it := &items[i]
		var wid any
		if it.WithdrawalID != uuid.Nil {
			wid = it.WithdrawalID
		}
		err := tx.QueryRow(ctx, `INSERT INTO recon_items (id, bank, business_date, status, rrn, stan, approval_code,
				bank_amount, switch_amount, withdrawal_id, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (id) DO UPDATE SET detail = excluded.detail, switch_amount = excluded.switch_amount,
				withdrawal_id = excluded.withdrawal_id
			RETURNING resolved, resolved_by, reason`,
			it.ID, bank, d, string(it.Status), it.RRN, it.STAN, it.ApprovalCode, it.BankAmount, it.SwitchAmount, wid, it.Detail).
			Scan(&it.Resolved, &it.ResolvedBy, &it.Reason)
		if err != nil {
			return fmt.Errorf("storing recon item: %w", err)
		}
	}
	return nil
}

// Resolve marks an item as dealt with by a person, with a reason. It
// changes nothing else: a correction is a separate, deliberate act.
func (s *Store) Resolve(ctx context.Context, itemID uuid.UUID, by, reason string) error {
	if by == "" || reason == "" {
		return softatm.Errorf(softatm.EInvalid, "who resolves and a reason are required")
	}
	return ledger.RunTx(ctx, s.pool, maxRetries, func(tx pgx.Tx) error {
		var resolved bool
		err := tx.QueryRow(ctx, `SELECT resolved FROM recon_items WHERE id = $1`, itemID).Scan(&resolved)
		if errors.Is(err, pgx.ErrNoRows) {
			return softatm.Errorf(softatm.ENotFound, "no reconciliation item %s", itemID)
		}
		if err != nil {
			return fmt.Errorf("reading recon item: %w", err)
		}
		if resolved {
			return softatm.Errorf(softatm.EConflict, "item %s is already resolved", itemID)
		}
		_, err = tx.Exec(ctx, `UPDATE recon_items SET resolved = true, resolved_by = $2, reason = $3, resolved_at = now()
			WHERE id = $1`, itemID, by, reason)
		return err
	})
}
