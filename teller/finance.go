package teller

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/recon"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/auth"
)

// Finance is the finance staff's HTTP API.
type Finance struct {
	API    *API
	Ledger *ledger.Ledger
	Recon  *recon.Store
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
	today, err := f.Ledger.BusinessDate(r.Context(), time.Now())
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

// Close handles POST /v1/finance/days/{date}/close.
func (f *Finance) Close(w http.ResponseWriter, r *http.Request) {
	d, err := f.date(r)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	if err := f.Ledger.CloseDay(r.Context(), d, who(r)); err != nil {
		f.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"date": d.Format("2006-01-02"), "closed": true})
}

// Import handles POST /v1/finance/recon/{bank}/{date}: the body is the
// bank's settlement file (CSV), raw or as the "file" field of a form.
func (f *Finance) Import(w http.ResponseWriter, r *http.Request) {
	d, err := f.date(r)
	if err != nil {
		f.fail(w, r, err)
		return
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
