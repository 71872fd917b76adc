package teller

import (
	"encoding/csv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/forecast"
	"github.com/softatm/softatm/ledger/recon"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/auth"
)

// Finance is the finance staff's HTTP API.
type Finance struct {
	API    *API
	Ledger *ledger.Ledger
	Recon  *recon.Store
	// Day is what the switch tells about a day being closed (the banks'
	// cut-offs, its open exceptions and claims).
	Day recon.DayFacts
	// Now is the clock that decides today's business day (the days list,
	// the cash forecast); nil: time.Now.
	Now func() time.Time
}

func (f *Finance) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// settlementFileMax bounds an uploaded bank settlement file.
const settlementFileMax = 16 << 20

func (f *Finance) fail(w http.ResponseWriter, r *http.Request, err error) { f.API.fail(w, r, err) }

func (f *Finance) date(r *http.Request) (time.Time, error) {
	d, err := time.Parse("2006-01-02", r.PathValue("date"))
	if err != nil {
		return time.Time{}, softatm.Errorf(softatm.EInvalid, "date must be YYYY-MM-DD")
	}
	return d, nil
}

func who(r *http.Request) string {
	if s, ok := auth.SessionFrom(r.Context()); ok {
		return s.User.Username
	}
	return "unknown"
}

// Days handles GET /v1/finance/days.
func (f *Finance) Days(w http.ResponseWriter, r *http.Request) {
	days, err := f.Ledger.Days(r.Context())
	if err != nil {
		f.fail(w, r, err)
		return
	}
	today, err := f.Ledger.BusinessDate(r.Context(), f.now())
	if err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"today": today.Format("2006-01-02"), "days": days})
}

// Settlement handles GET /v1/finance/days/{date}/settlement[?format=csv].
func (f *Finance) Settlement(w http.ResponseWriter, r *http.Request) {
	d, err := f.date(r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	rep, err := f.Ledger.Settlement(r.Context(), d)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="settlement-`+d.Format("2006-01-02")+`.csv"`)
		if err := rep.WriteCSV(w); err != nil {
			f.API.Log.Error("writing settlement csv", "err", err)
		}
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, rep)
}

type closeRequest struct {
	Reason string `json:"reason"`
}

// Closing handles GET /v1/finance/days/{date}/close: what closing the day
// would meet (when it may close, and what is still open).
func (f *Finance) Closing(w http.ResponseWriter, r *http.Request) {
	d, err := f.date(r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	c, _, err := f.Recon.Closing(r.Context(), f.Day, f.Ledger, d)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, c)
}

// Close handles POST /v1/finance/days/{date}/close {"reason"}: refused
// before the last bank's cut-off (day_not_over), and, while anything is
// open, without a reason (day_has_open_items, whose message lists them).
func (f *Finance) Close(w http.ResponseWriter, r *http.Request) {
	d, err := f.date(r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	var req closeRequest
	if r.ContentLength != 0 {
		if err := atmswitch.DecodeJSON(r, &req); err != nil {
			f.fail(w, r, err)
			return
		}
	}
	c, err := f.Recon.CloseDay(r.Context(), f.Day, f.Ledger, d, who(r), req.Reason)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"date": d.Format("2006-01-02"), "closed": true, "open": c.Open,
		"reason": strings.TrimSpace(req.Reason)})
}

// Import handles POST /v1/finance/recon/{bank}/{date}, and POST
// /v1/finance/recon for a file that names its bank and date: the body is
// the bank's settlement file (CSV), raw or as the "file" field of a form.
// A file of another bank or date than the path's is refused
// (settlement_file_other_bank, settlement_file_other_date); the same file
// again is settlement_file_imported, saying when; a bad file is
// settlement_file_invalid, listing every bad line.
func (f *Finance) Import(w http.ResponseWriter, r *http.Request) {
	var d time.Time
	if r.PathValue("date") != "" {
		var err error
		if d, err = f.date(r); err != nil {
			f.fail(w, r, err)
			return
		}
	}
	name := r.URL.Query().Get("name")
	var body io.Reader = http.MaxBytesReader(w, r.Body, settlementFileMax)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		file, hdr, err := r.FormFile("file")
		if err != nil {
			f.fail(w, r, softatm.Wrap(softatm.EInvalid, "attach the settlement file as 'file'", err))
			return
		}
		defer file.Close()
		body, name = io.LimitReader(file, settlementFileMax), hdr.Filename
	}
	content, err := io.ReadAll(body)
	if err != nil {
		f.fail(w, r, softatm.Wrap(softatm.EInvalid, "settlement file too large or unreadable", err))
		return
	}
	res, err := f.Recon.Import(r.Context(), r.PathValue("bank"), d, name, content)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, res)
}

// Report handles GET /v1/finance/recon/{bank}/{date}.
func (f *Finance) Report(w http.ResponseWriter, r *http.Request) {
	d, err := f.date(r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	items, err := f.Recon.Report(r.Context(), r.PathValue("bank"), d)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

type resolveRequest struct {
	Reason string `json:"reason"`
}

func (f *Finance) resolve(w http.ResponseWriter, r *http.Request, do func(id uuid.UUID, by, reason string) error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		f.fail(w, r, softatm.Errorf(softatm.ENotFound, "not found"))
		return
	}
	var req resolveRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		f.fail(w, r, err)
		return
	}
	if err := do(id, who(r), req.Reason); err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]bool{"resolved": true})
}

// ResolveItem handles POST /v1/finance/recon/items/{id}/resolve.
func (f *Finance) ResolveItem(w http.ResponseWriter, r *http.Request) {
	f.resolve(w, r, func(id uuid.UUID, by, reason string) error { return f.Recon.Resolve(r.Context(), id, by, reason) })
}

// Exceptions handles GET /v1/finance/exceptions.
func (f *Finance) Exceptions(w http.ResponseWriter, r *http.Request) {
	ex, err := f.API.Service.Exceptions(r.Context())
	if err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"exceptions": ex})
}

// ResolveException handles POST /v1/finance/exceptions/{id}/resolve.
func (f *Finance) ResolveException(w http.ResponseWriter, r *http.Request) {
	f.resolve(w, r, func(id uuid.UUID, by, reason string) error {
		return f.API.Service.ResolveException(r.Context(), id, by, reason)
	})
}

// The till's cash movements and the bank's settlement payments recorded
// from the finance page (and, for the count, the kiosk). Each is one ledger
// transfer whose id is derived from what identifies the event in the
// world (a delivery's or a payment's reference, the count's idempotency
// key), so that the same event entered twice is booked once, and the same
// reference with another amount is refused (conflict).

// Namespaces of the ids derived here.
var (
	tillMovementNS = uuid.MustParse("3c9f2f5e-8d0b-4f57-b0f4-52b1f0f9b6d1")
	tillCountNS    = uuid.MustParse("a3f6c1d2-4b7e-4e0a-9d8c-6f5e2b1a0c93")
	bankPaymentNS  = uuid.MustParse("e41b7a90-2c3d-4f1e-8a6b-9d0c5e7f3a28")
)

// referenceMax bounds a delivery's or payment's reference.
const referenceMax = 64

func checkReference(ref string) error {
	if ref == "" || len(ref) > referenceMax {
		return softatm.Errorf(softatm.EInvalid, "a reference of 1-%d characters is required (delivery note, bank transfer id)", referenceMax)
	}
	for _, c := range ref {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("_.:/-", c)) {
			return softatm.Errorf(softatm.EInvalid, "a reference may hold only letters, digits and _ . : / -")
		}
	}
	return nil
}

// till returns post office po's till, refusing a post office that has none
// (a typo must not open a new till).
func (f *Finance) till(r *http.Request, po string) (ledger.Account, error) {
	if po == "" {
		return ledger.Account{}, softatm.Errorf(softatm.EInvalid, "post office is required")
	}
	a, err := f.Ledger.Account(r.Context(), ledger.TillCode(po))
	if softatm.ErrorCode(err) == softatm.ENotFound {
		return a, softatm.Errorf(softatm.ENotFound, "post office %s has no till", po)
	}
	return a, err
}

type cashMoveRequest struct {
	Amount    int64  `json:"amount"`
	Reference string `json:"reference"`
}

type cashMoveView struct {
	PostOffice string    `json:"post_office"`
	Kind       string    `json:"kind"`
	Amount     int64     `json:"amount"`
	Reference  string    `json:"reference"`
	TransferID uuid.UUID `json:"transfer_id"`
}

// cashMove handles a replenishment or a collection of the till named in
// the path.
func (f *Finance) cashMove(w http.ResponseWriter, r *http.Request, kind string,
	book func(r *http.Request, po string, amount int64, currency string, id uuid.UUID) error) {
	var req cashMoveRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		f.fail(w, r, err)
		return
	}
	po := r.PathValue("po")
	if err := checkReference(req.Reference); err != nil {
		f.fail(w, r, err)
		return
	}
	if req.Amount <= 0 {
		f.fail(w, r, softatm.Errorf(softatm.EInvalidAmount, "the amount must be positive"))
		return
	}
	till, err := f.till(r, po)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	id := uuid.NewSHA1(tillMovementNS, []byte(kind+"/"+po+"/"+req.Reference))
	if err := book(r, po, req.Amount, till.Currency, id); err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, cashMoveView{PostOffice: po, Kind: kind, Amount: req.Amount,
		Reference: req.Reference, TransferID: id})
}

// Replenish handles POST /v1/finance/tills/{po}/replenish
// {"amount","reference"}: cash delivered into the till.
func (f *Finance) Replenish(w http.ResponseWriter, r *http.Request) {
	f.cashMove(w, r, "replenish", func(r *http.Request, po string, amount int64, cur string, id uuid.UUID) error {
		return f.Ledger.Replenish(r.Context(), po, amount, cur, id)
	})
}

// Collect handles POST /v1/finance/tills/{po}/collect
// {"amount","reference"}: cash taken out of the till.
func (f *Finance) Collect(w http.ResponseWriter, r *http.Request) {
	f.cashMove(w, r, "collect", func(r *http.Request, po string, amount int64, cur string, id uuid.UUID) error {
		return f.Ledger.Collect(r.Context(), po, amount, cur, id)
	})
}

type countRequest struct {
	Counted *int64 `json:"counted"`
}

// count records the end-of-day count of po's till.
func (f *Finance) count(w http.ResponseWriter, r *http.Request, po, by string) {
	var req countRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		f.fail(w, r, err)
		return
	}
	if req.Counted == nil {
		f.fail(w, r, softatm.Errorf(softatm.EInvalid, "counted (the cash in the till) is required"))
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		f.fail(w, r, softatm.Errorf(softatm.EInvalid, "an Idempotency-Key is required"))
		return
	}
	if _, err := f.till(r, po); err != nil {
		f.fail(w, r, err)
		return
	}
	id := uuid.NewSHA1(tillCountNS, []byte(po+"/"+by+"/"+key))
	tc, err := f.Ledger.Count(r.Context(), po, *req.Counted, by, id)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, tc)
}

// Count handles POST /v1/finance/tills/{po}/count {"counted"}: the
// teller's end-of-day count, entered by finance.
func (f *Finance) Count(w http.ResponseWriter, r *http.Request) {
	f.count(w, r, r.PathValue("po"), who(r))
}

// TellerCount handles POST /v1/teller/till/count {"counted"}: the teller
// counts the till of their own post office.
func (f *Finance) TellerCount(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	f.count(w, r, t.PostOffice, t.Username)
}

type bankPaymentRequest struct {
	Amount    int64  `json:"amount"`
	Reference string `json:"reference"`
}

// SettleBank handles POST /v1/finance/days/{date}/banks/{bank}/settle
// {"amount","reference"}: the bank paid (part of) what it owes for the
// day. It answers with the bank's line of the day's report (net owed,
// settled, outstanding) after the payment.
func (f *Finance) SettleBank(w http.ResponseWriter, r *http.Request) {
	d, err := f.date(r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	var req bankPaymentRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		f.fail(w, r, err)
		return
	}
	bank := r.PathValue("bank")
	if err := checkReference(req.Reference); err != nil {
		f.fail(w, r, err)
		return
	}
	if req.Amount <= 0 {
		f.fail(w, r, softatm.Errorf(softatm.EInvalidAmount, "the amount must be positive"))
		return
	}
	recv, err := f.Ledger.Account(r.Context(), ledger.ReceivableCode(bank))
	if softatm.ErrorCode(err) == softatm.ENotFound {
		err = softatm.Errorf(softatm.ENotFound, "bank %s owes nothing: it has no receivable", bank)
	}
	if err != nil {
		f.fail(w, r, err)
		return
	}
	id := uuid.NewSHA1(bankPaymentNS, []byte(bank+"/"+d.Format(time.DateOnly)+"/"+req.Reference))
	if err := f.Ledger.SettleBank(r.Context(), d, bank, req.Amount, recv.Currency, id); err != nil {
		f.fail(w, r, err)
		return
	}
	rep, err := f.Ledger.Settlement(r.Context(), d)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	line := ledger.BankTotal{Bank: bank, Currency: ledger.CurrencyName(recv.Currency)}
	for _, b := range rep.Banks {
		if b.Bank == bank {
			line = b
		}
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"date": d.Format(time.DateOnly), "transfer_id": id, "bank": line})
}

// forecastHistoryDays is how much till history the cash forecast reads:
// the widest of its windows (forecast.Defaults.MonthDays, 90 days).
var forecastHistoryDays = max(forecast.Defaults.MonthDays, forecast.Defaults.WeekdayDays, forecast.Defaults.LevelDays)

// PostOfficeForecast is one post office's cash forecast.
type PostOfficeForecast struct {
	PostOffice string `json:"post_office"`
	Currency   string `json:"currency"`
	Balance    int64  `json:"balance"` // the till's cash now
	forecast.Result
}

// forecasts forecasts every till from today's business day on.
func (f *Finance) forecasts(r *http.Request) (time.Time, []PostOfficeForecast, error) {
	ctx := r.Context()
	today, err := f.Ledger.BusinessDate(ctx, f.now())
	if err != nil {
		return today, nil, err
	}
	hist, err := f.Ledger.TillHistory(ctx, today.AddDate(0, 0, -forecastHistoryDays), today)
	if err != nil {
		return today, nil, err
	}
	tills, err := f.Ledger.Tills(ctx)
	if err != nil {
		return today, nil, err
	}
	byPO := map[string][]forecast.Day{}
	paidToday := map[string]int64{}
	for _, d := range hist {
		if d.Date.Equal(today) {
			paidToday[d.PostOffice] += d.PaidOut
			continue
		}
		byPO[d.PostOffice] = append(byPO[d.PostOffice], forecast.Day{Date: d.Date, Paid: d.PaidOut, Replenished: d.Replenished})
	}
	out := []PostOfficeForecast{}
	for _, a := range tills {
		po, ok := ledger.TillPostOffice(a.Code)
		if !ok {
			continue
		}
		bal := a.DebitsPosted - a.CreditsPosted - a.CreditsPending
		res := forecast.Forecast(forecast.Input{History: byPO[po], Today: today, PaidToday: paidToday[po], Balance: bal}, forecast.Settings{})
		out = append(out, PostOfficeForecast{PostOffice: po, Currency: ledger.CurrencyName(a.Currency), Balance: bal, Result: res})
	}
	return today, out, nil
}

// ForecastCSVHeader is the header of the forecast's CSV: one row per post
// office and day; runs_short_on (empty: the till lasts the week) and
// suggested_replenishment repeat on each of the post office's rows.
var ForecastCSVHeader = []string{"post_office", "date", "weekday", "expected", "remaining", "pension_salary_day",
	"projected_till", "runs_short_on", "suggested_replenishment", "currency"}

// Forecast handles GET /v1/finance/forecast[?format=csv]: each post
// office's cash expected to be paid out per day for the coming week, the
// day its till is expected to run short, and a suggested replenishment.
func (f *Finance) Forecast(w http.ResponseWriter, r *http.Request) {
	today, pos, err := f.forecasts(r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("format") != "csv" {
		atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"today": today.Format(time.DateOnly),
			"method": forecast.Method(forecast.Settings{}), "post_offices": pos})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="cash-forecast-`+today.Format(time.DateOnly)+`.csv"`)
	cw := csv.NewWriter(w)
	recs := [][]string{ForecastCSVHeader}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, p := range pos {
		short := ""
		if !p.RunsShort.IsZero() {
			short = p.RunsShort.Format(time.DateOnly)
		}
		for _, d := range p.Days {
			recs = append(recs, []string{p.PostOffice, d.Date.Format(time.DateOnly), d.Weekday, n(d.Expected), n(d.Remaining),
				strconv.FormatBool(d.Peak), n(d.Till), short, n(p.Suggested), p.Currency})
		}
	}
	if err := cw.WriteAll(recs); err != nil {
		f.API.Log.Error("writing forecast csv", "err", err)
	}
}
