package recon

import (
	"bytes"
	"encoding/csv"
	"errors"
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

// Parse reads a bank settlement file strictly: the exact header, seven
// fields per line, and every field well-formed. Any fault is an EInvalid
// error naming the line; nothing is guessed.
//
// Fields: rrn 1-12 letters or digits (ISO 8583 field 37); stan 6 digits
// (field 11); approval_code 1-6 letters or digits (field 38); amount a
// positive integer of minor units, no sign or separators; currency 3
// upper-case letters or 3 digits; transaction_time RFC 3339; type 1-32 of
// a-z, 0-9, '_'.
func Parse(r io.Reader) ([]Line, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, softatm.Wrap(softatm.EInvalid, "reading the settlement file", err)
	}
	if len(data) > maxFileBytes {
		return nil, softatm.Errorf(softatm.EInvalid, "settlement file larger than %d bytes", maxFileBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM some spreadsheet programs add
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = len(Header)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, softatm.Errorf(softatm.EInvalid, "empty settlement file: no header")
	}
	if err != nil {
		return nil, csvError(err)
	}
	if strings.Join(head, ",") != strings.Join(Header, ",") {
		return nil, softatm.Errorf(softatm.EInvalid, "line 1: header must be %q", strings.Join(Header, ","))
	}
	var lines []Line
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		if err != nil {
			return nil, csvError(err)
		}
		lineNo, _ := cr.FieldPos(0)
		if len(lines) >= maxLines {
			return nil, softatm.Errorf(softatm.EInvalid, "line %d: more than %d lines", lineNo, maxLines)
		}
		l, err := parseLine(lineNo, rec)
		if err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return softatm.Errorf(softatm.EInvalid, "line %d: %v", pe.Line, pe.Err)
	}
	return softatm.Wrap(softatm.EInvalid, "reading the settlement file", err)
}

func parseLine(n int, f []string) (Line, error) {
	bad := func(field, why string) (Line, error) {
		return Line{}, softatm.Errorf(softatm.EInvalid, "line %d: %s %s", n, field, why)
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
	return l, nil
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
