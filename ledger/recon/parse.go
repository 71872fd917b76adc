package recon

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	softatm "github.com/softatm/softatm"
)

// Header is the exact header line of a bank settlement file.
var Header = []string{"rrn", "stan", "approval_code", "amount", "currency", "transaction_time", "type"}

// Limits of a settlement file: more is refused, not truncated.
const (
	maxFileBytes = 64 << 20
	maxLines     = 1_000_000
	maxTypeLen   = 32
	maxAmountLen = 18 // digits: always fits in int64
)

// Line is one transaction line of a bank settlement file.
type Line struct {
	LineNo       int // line in the file, the header being line 1
	RRN          string
	STAN         string
	ApprovalCode string
	Amount       int64 // minor units
	Currency     string
	Time         time.Time
	Type         string
}

// FileHeader is the header of the first record of a settlement file that
// names its bank and business date (the layout README.md documents, which
// the simulator writes: iso/banksim.WriteBankSettlementFile):
//
//	bank,business_date,cutoff
//	MB,2026-11-27,23:59:59
//	rrn,stan,approval_code,amount,currency,transaction_time,type
//	...lines
//
// A file without these two records (the header line first) is the older
// layout; it names neither, and is imported for the bank and date given.
var FileHeader = []string{"bank", "business_date", "cutoff"}

// problemsMax bounds the problems one bad file reports (the first ones).
const problemsMax = 200

// File is a parsed settlement file.
type File struct {
	Bank   string    // "" in the older layout
	Date   time.Time // zero in the older layout
	Cutoff string    // as the file says it, HH:MM:SS; "" in the older layout
	Lines  []Line
}

// Problem is one bad line of a settlement file.
type Problem struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// FileError is a settlement file with bad lines: every one of them (up to
// problemsMax), each with its line number. Its code is EFileInvalid, and
// its message lists them, one per line.
type FileError struct {
	Problems []Problem
}

func (e *FileError) Error() string { return softatm.EFileInvalid + ": " + e.message() }

func (e *FileError) message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the settlement file has %d bad line(s); nothing was imported", len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\nline %d: %s", p.Line, p.Reason)
	}
	return b.String()
}

// Coded is the error as the module's vocabulary carries it (softatm.Error,
// code EFileInvalid), which is what the HTTP layer writes.
func (e *FileError) Coded() *softatm.Error {
	return &softatm.Error{Code: softatm.EFileInvalid, Message: e.message()}
}

// Parse reads a bank settlement file and returns its lines (see ParseFile).
func Parse(r io.Reader) ([]Line, error) {
	f, err := ParseFile(r)
	return f.Lines, err
}

// ParseFile reads a bank settlement file strictly: the bank's records if
// present, the exact header, seven fields per line, and every field
// well-formed. A file with bad lines is an EFileInvalid error listing
// every bad line with its number (FileError.Coded); nothing is guessed.
//
// Fields: rrn 1-12 letters or digits (ISO 8583 field 37); stan 6 digits
// (field 11); approval_code 1-6 letters or digits (field 38); amount a
// positive integer of minor units, no sign or separators; currency 3
// upper-case letters or 3 digits; transaction_time RFC 3339; type 1-32 of
// a-z, 0-9, '_'. The bank record: bank 1-16 upper-case letters or digits,
// business_date YYYY-MM-DD, cutoff HH:MM:SS.
func ParseFile(r io.Reader) (File, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return File{}, softatm.Wrap(softatm.EInvalid, "reading the settlement file", err)
	}
	if len(data) > maxFileBytes {
		return File{}, softatm.Errorf(softatm.EInvalid, "settlement file larger than %d bytes", maxFileBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM some spreadsheet programs add
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1 // counted here, so that a short line is one problem among the others
	var f File
	var problems []Problem
	bad := func(line int, reason string) {
		if len(problems) < problemsMax {
			problems = append(problems, Problem{line, reason})
		}
	}
	fail := func() (File, error) {
		return File{}, (&FileError{Problems: problems}).Coded()
	}
	last := 0 // the line of the last record read
	read := func() ([]string, int, error) {
		rec, err := cr.Read()
		if len(rec) > 0 {
			last, _ = cr.FieldPos(0)
		}
		return rec, last, err
	}
	head, line, err := read()
	if errors.Is(err, io.EOF) {
		bad(1, "empty settlement file: no header")
		return fail()
	}
	if err != nil {
		return File{}, csvError(err)
	}
	if strings.Join(head, ",") == strings.Join(FileHeader, ",") {
		rec, line, err := read()
		if err != nil && !errors.Is(err, io.EOF) {
			return File{}, csvError(err)
		}
		switch {
		case len(rec) != len(FileHeader):
			bad(line, "the bank record must be bank,business_date,cutoff")
		default:
			f.Bank, f.Cutoff = rec[0], rec[2]
			if !alnum(f.Bank, 1, 16) || strings.ToUpper(f.Bank) != f.Bank {
				bad(line, "bank must be 1-16 upper-case letters or digits")
			}
			if f.Date, err = time.Parse(time.DateOnly, rec[1]); err != nil {
				bad(line, "business_date must be YYYY-MM-DD")
			}
			if _, err := time.Parse("15:04:05", f.Cutoff); err != nil {
				bad(line, "cutoff must be HH:MM:SS")
			}
		}
		if len(problems) > 0 {
			return fail()
		}
		if head, line, err = read(); err != nil {
			if errors.Is(err, io.EOF) {
				bad(line+1, "no header line after the bank record")
				return fail()
			}
			return File{}, csvError(err)
		}
	}
	if strings.Join(head, ",") != strings.Join(Header, ",") {
		bad(line, fmt.Sprintf("header must be %q", strings.Join(Header, ",")))
		return fail()
	}
	for {
		rec, lineNo, err := read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			bad(pe.Line, pe.Err.Error())
			if errors.Is(pe.Err, csv.ErrBareQuote) || errors.Is(pe.Err, csv.ErrQuote) {
				// The reader cannot find the next record reliably after
				// a broken quote: what follows is not read.
				return fail()
			}
			continue
		}
		if err != nil {
			return File{}, csvError(err)
		}
		if len(f.Lines)+len(problems) >= maxLines {
			bad(lineNo, fmt.Sprintf("more than %d lines", maxLines))
			return fail()
		}
		if len(rec) != len(Header) {
			bad(lineNo, fmt.Sprintf("%d fields, want %d", len(rec), len(Header)))
			continue
		}
		l, reason := parseLine(lineNo, rec)
		if reason != "" {
			bad(lineNo, reason)
			continue
		}
		f.Lines = append(f.Lines, l)
	}
	if len(problems) > 0 {
		return fail()
	}
	return f, nil
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return (&FileError{Problems: []Problem{{pe.Line, pe.Err.Error()}}}).Coded()
	}
	return softatm.Wrap(softatm.EInvalid, "reading the settlement file", err)
}

// parseLine returns the line, or why it is bad.
func parseLine(n int, f []string) (Line, string) {
	bad := func(field, why string) (Line, string) {
		return Line{}, field + " " + why
	}
	l := Line{LineNo: n, RRN: f[0], STAN: f[1], ApprovalCode: f[2], Currency: f[4], Type: f[6]}
	if !alnum(l.RRN, 1, 12) {
		return bad("rrn", "must be 1-12 letters or digits")
	}
	if len(l.STAN) != 6 || !digits(l.STAN) {
		return bad("stan", "must be 6 digits")
	}
	if !alnum(l.ApprovalCode, 1, 6) {
		return bad("approval_code", "must be 1-6 letters or digits")
	}
	if len(f[3]) == 0 || len(f[3]) > maxAmountLen || !digits(f[3]) {
		return bad("amount", "must be a positive integer of minor units")
	}
	amount, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || amount <= 0 {
		return bad("amount", "must be a positive integer of minor units")
	}
	l.Amount = amount
	if len(l.Currency) != 3 || !(upper(l.Currency) || digits(l.Currency)) {
		return bad("currency", "must be 3 upper-case letters or 3 digits")
	}
	t, err := time.Parse(time.RFC3339, f[5])
	if err != nil {
		return bad("transaction_time", "must be RFC 3339, e.g. 2025-06-02T10:15:00+07:00")
	}
	l.Time = t
	if len(l.Type) == 0 || len(l.Type) > maxTypeLen || strings.IndexFunc(l.Type, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) >= 0 {
		return bad("type", "must be 1-32 of a-z, 0-9, _")
	}
	return l, ""
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func upper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func alnum(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
