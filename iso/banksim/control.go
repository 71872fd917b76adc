package banksim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/softatm/softatm/iso"
)

// Limits of the control endpoint.
const (
	controlBodyMaxBytes = 4 << 10
	faultDelayMaxMs     = 10 * 60 * 1000
)

var faultKinds = map[string]bool{
	FaultNone: true, FaultDelay: true, FaultDrop: true, FaultDisconnect: true, FaultDuplicate: true,
	FaultLate: true, FaultUnavailable: true, FaultMalfunction: true,
	FaultReplyAmount: true, FaultReplyRRN: true, FaultReplyAccount: true, FaultReplyCurrency: true, FaultReplyProc: true,
	FaultAdviceRefuse: true, FaultReversalRefuse: true,
}

// FaultRequest is the body of POST /faults. With mti set the fault applies to
// that MTI; otherwise to account ("" = every financial request). Kind ""
// removes the fault. ResponseCode is the refusal advice_refuse and
// reversal_refuse answer (default 05); it must not be 00, which would not
// be a refusal.
type FaultRequest struct {
	Account      string `json:"account"`
	MTI          string `json:"mti"`
	Kind         string `json:"kind"`
	DelayMs      int    `json:"delay_ms"`
	ResponseCode string `json:"response_code"`
}

// Fault is the fault f asks for.
func (f FaultRequest) Fault() Fault {
	return Fault{Kind: f.Kind, DelayMs: f.DelayMs, ResponseCode: f.ResponseCode}
}

// ParseFaultRequest decodes and checks a POST /faults body.
func ParseFaultRequest(r io.Reader) (FaultRequest, error) {
	var f FaultRequest
	dec := json.NewDecoder(io.LimitReader(r, controlBodyMaxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return FaultRequest{}, fmt.Errorf("decoding fault: %w", err)
	}
	if !faultKinds[f.Kind] {
		return FaultRequest{}, fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if f.DelayMs < 0 || f.DelayMs > faultDelayMaxMs {
		return FaultRequest{}, fmt.Errorf("delay_ms %d: want 0..%d", f.DelayMs, faultDelayMaxMs)
	}
	if f.MTI != "" && (len(f.MTI) != 4 || !allDigits(f.MTI)) {
		return FaultRequest{}, fmt.Errorf("mti %q: want 4 digits", f.MTI)
	}
	if f.ResponseCode != "" && (len(f.ResponseCode) != 2 || !allDigits(f.ResponseCode) || f.ResponseCode == iso.RCApproved) {
		return FaultRequest{}, fmt.Errorf("response_code %q: want 2 digits other than 00", f.ResponseCode)
	}
	return f, nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

type accountJSON struct {
	Number         string `json:"number"`
	Bank           string `json:"bank"`
	Holder         string `json:"holder"`
	Phone          string `json:"phone"`
	Balance        int64  `json:"balance"`
	DailyLimit     int64  `json:"daily_limit"`
	Blocked        bool   `json:"blocked"`
	Held           int64  `json:"held"`
	WithdrawnToday int64  `json:"withdrawn_today"`
}

type holdJSON struct {
	ApprovalCode string     `json:"approval_code"`
	Account      string     `json:"account"` // masked
	RRN          string     `json:"rrn"`
	STAN         string     `json:"stan"`
	Amount       int64      `json:"amount"`
	State        string     `json:"state"`
	CreatedAt    time.Time  `json:"created_at"`
	ResolvedAt   *time.Time `json:"resolved_at,omitempty"`
}

// ControlHandler serves the simulator's control API, for tests, demos and
// benchmarks: GET /accounts, GET /holds, POST /faults, DELETE /faults. The
// demo accounts are made up, so /accounts shows their numbers (the demo
// banking app needs them); /holds masks them like any log.
func (s *Sim) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /accounts", func(w http.ResponseWriter, r *http.Request) {
		var out []accountJSON
		for _, a := range s.Accounts() {
			out = append(out, accountJSON{a.Number, a.Bank, a.Holder, a.Phone, a.Balance, a.DailyLimit, a.Blocked, a.Held, a.WithdrawnToday})
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /holds", func(w http.ResponseWriter, r *http.Request) {
		out := []holdJSON{}
		for _, h := range s.Holds() {
			j := holdJSON{h.ApprovalCode, iso.Mask(h.Account), h.RRN, h.STAN, h.Amount, h.State, h.CreatedAt, nil}
			if !h.ResolvedAt.IsZero() {
				at := h.ResolvedAt
				j.ResolvedAt = &at
			}
			out = append(out, j)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFaultRequest(r.Body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request", "message": err.Error()}})
			return
		}
		if f.MTI != "" {
			s.SetMTIFault(f.MTI, f.Fault())
		} else {
			s.SetFault(f.Account, f.Fault())
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// The settlement file (see README, "Settlement file"): a CSV whose first
// two lines name the bank and the business date, then the transaction
// header and one line per capture:
//
//	bank,business_date,cutoff
//	MB,2026-11-27,23:59:59
//	rrn,stan,approval_code,amount,currency,transaction_time,type
//	000000123456,000042,A1B2C3,1700000,704,2026-11-27T13:22:05+07:00,withdrawal
var (
	// SettlementFileHeader is the header of the file's first record.
	SettlementFileHeader = []string{"bank", "business_date", "cutoff"}
	// SettlementHeader is the header line of the transaction lines.
	SettlementHeader = []string{"rrn", "stan", "approval_code", "amount", "currency", "transaction_time", "type"}
)

// SettlementFileName is the name of bank's settlement file for a business
// date: settlement-MB-2026-11-27.csv.
func SettlementFileName(bank string, day time.Time) string {
	return "settlement-" + bank + "-" + day.Format(time.DateOnly) + ".csv"
}

// WriteSettlementFile writes the settlement file of the bank the simulator
// plays (WithBank) for business date day; without WithBank, of the one
// bank its accounts belong to (several: an error, see
// WriteBankSettlementFile).
func (s *Sim) WriteSettlementFile(w io.Writer, day time.Time) error {
	bank := s.Bank()
	if bank == "" {
		for _, a := range s.Accounts() {
			if bank != "" && a.Bank != bank {
				return fmt.Errorf("the simulator holds accounts of %s and %s: name the bank", bank, a.Bank)
			}
			bank = a.Bank
		}
	}
	return s.WriteBankSettlementFile(w, bank, day)
}

// WriteBankSettlementFile writes bank's settlement file for business date
// day (its calendar date as given): one line per hold of the bank's
// accounts captured in that business day under the bank's cut-off
// (BusinessDate), ordered by capture time. transaction_time is the capture
// time (RFC 3339, +07:00); amount is in minor units; type is "withdrawal".
func (s *Sim) WriteBankSettlementFile(w io.Writer, bank string, day time.Time) error {
	if bank == "" {
		return fmt.Errorf("a settlement file needs a bank code")
	}
	y, m, d := day.Date()
	date := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	bankOf := map[string]string{}
	for _, a := range s.Accounts() {
		bankOf[a.Number] = a.Bank
	}
	// A line per captured hold (a withdrawal) and per credit kept (a
	// deposit) of the day, in time order.
	type line struct {
		rrn, stan, approval, kind string
		amount                    int64
		at                        time.Time
	}
	var lines []line
	for _, h := range s.Holds() {
		if h.State == HoldCaptured && bankOf[h.Account] == bank && s.BusinessDateOf(bank, h.ResolvedAt).Equal(date) {
			lines = append(lines, line{h.RRN, h.STAN, h.ApprovalCode, "withdrawal", h.Amount, h.ResolvedAt})
		}
	}
	for _, c := range s.Credits() {
		if c.State == CreditDone && bankOf[c.Account] == bank && s.BusinessDateOf(bank, c.CreatedAt).Equal(date) {
			lines = append(lines, line{c.RRN, c.STAN, c.ApprovalCode, "deposit", c.Amount, c.CreatedAt})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	cw := csv.NewWriter(w)
	for _, rec := range [][]string{SettlementFileHeader, {bank, date.Format(time.DateOnly), s.CutoffOf(bank)}, SettlementHeader} {
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	for _, l := range lines {
		if err := cw.Write([]string{l.rrn, l.stan, l.approval, strconv.FormatInt(l.amount, 10),
			iso.CurrencyVND, l.at.In(iso.LocalZone).Format(time.RFC3339), l.kind}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
