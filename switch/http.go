package atmswitch

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/idem"
)

// WriteJSON writes v with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) { softatm.WriteJSON(w, status, v) }

// bodyMax bounds every JSON request body.
const bodyMax = 64 << 10

// DecodeJSON reads a JSON body strictly: unknown fields, duplicate keys (at
// any depth) and trailing data are errors, so a typo or a second value never
// silently changes a request.
func DecodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, bodyMax))
	if err != nil {
		return softatm.Wrap(softatm.EInvalid, "cannot read the request body", err)
	}
	if key, dup := duplicateKey(body); dup {
		if len(key) > 40 {
			key = key[:40] + "..."
		}
		return softatm.Errorf(softatm.EInvalid, "malformed JSON body: key %q appears twice", key)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return softatm.Wrap(softatm.EInvalid, "malformed JSON body: "+jsonProblem(err), err)
	}
	if dec.More() {
		return softatm.Errorf(softatm.EInvalid, "malformed JSON body: trailing data")
	}
	return nil
}

func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error"
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	case errors.Is(err, io.EOF):
		return "empty body"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "cannot decode"
}

// Instrument counts and times a route; the outcome label is "ok" or the
// error code softatm.WriteError wrote, whichever layer wrote it
// (authentication, idempotency or the handler).
func (m *Metrics) Instrument(route string, h http.Handler) http.Handler {
	lat := m.latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, outcome := softatm.WithOutcome(r.Context())
		start := time.Now()
		h.ServeHTTP(w, r.WithContext(ctx))
		lat.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, outcome.Label()).Inc()
	})
}

// WithdrawalView is a withdrawal as a bank's app sees it.
type WithdrawalView struct {
	// Kind is "deposit" for a deposit code (cash in); absent for a
	// withdrawal, as before deposits.
	Kind        Kind       `json:"kind,omitempty"`
	ID          uuid.UUID  `json:"id"`
	State       State      `json:"state"`
	Bank        string     `json:"bank"`
	Account     string     `json:"account"` // masked by iso.Mask, the one account masker
	Amount      int64      `json:"amount"`
	Currency    string     `json:"currency"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	QRPayload   string     `json:"qr_payload,omitempty"`
	QRPNG       string     `json:"qr_png,omitempty"`
	NumericCode string     `json:"numeric_code,omitempty"` // only in the answer that issued it
	PaidAt      *time.Time `json:"paid_at,omitempty"`
	PostOffice  string     `json:"post_office,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`

	// NumericBlocked: too many wrong phone digits were typed for this code
	// at post offices, so its numeric code is refused; its QR code still
	// pays. The app can tell the citizen to show the QR code.
	NumericBlocked bool `json:"numeric_blocked"`
}

// View returns w as its bank sees it. The QR payload is shown only while it
// can still be redeemed.
func View(w Withdrawal) WithdrawalView {
	v := WithdrawalView{ID: w.ID, State: w.State, Bank: w.Bank, Account: iso.Mask(w.Account), Amount: w.Amount,
		Currency: w.Currency, PostOffice: w.PostOffice, CreatedAt: w.CreatedAt}
	v.NumericBlocked = w.NumericBlocked
	if w.Kind == KindDeposit {
		v.Kind = KindDeposit
	}
	if !w.ExpiresAt.IsZero() && w.ExpiresAt.Unix() > 0 {
		t := w.ExpiresAt
		v.ExpiresAt = &t
	}
	if w.PaidAt.Unix() > 0 {
		t := w.PaidAt
		v.PaidAt = &t
	}
	if w.State == StateReserved || w.State == StateClaimed || w.State == StateDepIssued || w.State == StateDepCounter {
		v.QRPayload = w.QRPayload
		v.QRPNG = "/v1/withdrawals/" + w.ID.String() + "/qr.png"
	}
	return v
}

// BankAPI serves the bank app's endpoints.
type BankAPI struct {
	Service *Service
	Log     *slog.Logger
	// BankOf returns the authenticated bank of a request (set by the auth
	// middleware), or false.
	BankOf func(r *http.Request) (string, bool)
	// ClientOf returns the authenticated bank client's id, to whom the
	// withdrawals it creates are called back (callbacks.go). Nil: none.
	ClientOf func(r *http.Request) string
	// MaxWait bounds a waiting status GET below the server's write
	// timeout, past which its answer would be cut off; 0: MaxWait.
	MaxWait time.Duration
}

func (a *BankAPI) bank(w http.ResponseWriter, r *http.Request) (string, bool) {
	b, ok := a.BankOf(r)
	if !ok {
		softatm.WriteError(w, r, a.Log, softatm.Errorf(softatm.EUnauthorized, "bank client credentials required"))
	}
	return b, ok
}

func pathID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, softatm.Errorf(softatm.ENotFound, "withdrawal not found")
	}
	return id, nil
}

// Create handles POST /v1/withdrawals.
func (a *BankAPI) Create(w http.ResponseWriter, r *http.Request) {
	bank, ok := a.bank(w, r)
	if !ok {
		return
	}
	var req CreateRequest
	if err := DecodeJSON(r, &req); err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	req.Key = idem.KeyFrom(r.Context())
	if a.ClientOf != nil {
		req.Client = a.ClientOf(r)
	}
	issued, err := a.Service.Create(r.Context(), bank, req)
	if err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	v := View(issued.Withdrawal)
	v.NumericCode = issued.Numeric
	WriteJSON(w, http.StatusCreated, v)
}

// ActiveList is the answer of GET /v1/withdrawals.
type ActiveList struct {
	Withdrawals []WithdrawalView `json:"withdrawals"`
}

// List handles GET /v1/withdrawals?account=...&state=active: the
// account's codes that can still be paid. Only state=active is served
// (absent means active). The account is never logged: WriteError logs the
// path without the query.
func (a *BankAPI) List(w http.ResponseWriter, r *http.Request) {
	bank, ok := a.bank(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if st := q.Get("state"); st != "" && st != "active" {
		softatm.WriteError(w, r, a.Log, softatm.Errorf(softatm.EInvalid, "state must be active"))
		return
	}
	if q.Get("account") == "" {
		softatm.WriteError(w, r, a.Log, softatm.Errorf(softatm.EInvalid, "account is required"))
		return
	}
	list, err := a.Service.ActiveCodes(r.Context(), bank, q.Get("account"))
	if err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	out := ActiveList{Withdrawals: make([]WithdrawalView, 0, len(list))}
	for _, wd := range list {
		out.Withdrawals = append(out.Withdrawals, View(wd))
	}
	WriteJSON(w, http.StatusOK, out)
}

// Limits handles GET /v1/limits[?account=...]: the limits a create is held
// to and, for an account of the caller's bank, what is left of its daily
// maximum.
func (a *BankAPI) Limits(w http.ResponseWriter, r *http.Request) {
	bank, ok := a.bank(w, r)
	if !ok {
		return
	}
	l, err := a.Service.Limits(r.Context(), bank, r.URL.Query().Get("account"))
	if err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	WriteJSON(w, http.StatusOK, l)
}

// Get handles GET /v1/withdrawals/{id}. With ?changed_from=STATE&wait=D
// (a Go duration, at most MaxWait) it answers once the state is not
// STATE, or after D with the state then: an app waiting for the teller
// asks once instead of polling.
func (a *BankAPI) Get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, wait := q.Get("changed_from"), q.Get("wait")
	if from == "" && wait == "" {
		a.onWithdrawal(w, r, a.Service.Get)
		return
	}
	d, err := time.ParseDuration(wait)
	if err != nil || from == "" {
		softatm.WriteError(w, r, a.Log, softatm.Errorf(softatm.EInvalid,
			"changed_from (a state) and wait (a duration such as 10s) go together"))
		return
	}
	if most := cmp.Or(a.MaxWait, MaxWait); d > most {
		softatm.WriteError(w, r, a.Log, softatm.Errorf(softatm.EInvalid, "wait must be at most %s", most))
		return
	}
	a.onWithdrawal(w, r, func(ctx context.Context, bank string, id uuid.UUID) (Withdrawal, error) {
		return a.Service.Wait(ctx, bank, id, State(from), d)
	})
}

// Cancel handles POST /v1/withdrawals/{id}/cancel.
func (a *BankAPI) Cancel(w http.ResponseWriter, r *http.Request) {
	a.onWithdrawal(w, r, a.Service.Cancel)
}

// onWithdrawal answers a request on the withdrawal named in the path with
// what do returns for the caller's bank.
func (a *BankAPI) onWithdrawal(w http.ResponseWriter, r *http.Request,
	do func(ctx context.Context, bank string, id uuid.UUID) (Withdrawal, error)) {
	bank, ok := a.bank(w, r)
	if !ok {
		return
	}
	id, err := pathID(r)
	if err == nil {
		var wd Withdrawal
		if wd, err = do(r.Context(), bank, id); err == nil {
			WriteJSON(w, http.StatusOK, View(wd))
			return
		}
	}
	softatm.WriteError(w, r, a.Log, err)
}

// qrSizePx is the side of the served QR image.
const qrSizePx = 320

// QRPNG handles GET /v1/withdrawals/{id}/qr.png.
func (a *BankAPI) QRPNG(w http.ResponseWriter, r *http.Request) {
	bank, ok := a.bank(w, r)
	if !ok {
		return
	}
	id, err := pathID(r)
	if err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	wd, err := a.Service.Get(r.Context(), bank, id)
	if err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	WriteQR(w, r, a.Log, wd)
}

// WriteQR serves wd's code as a PNG while it can still be redeemed.
func WriteQR(w http.ResponseWriter, r *http.Request, log *slog.Logger, wd Withdrawal) {
	if wd.Kind == KindDeposit && (wd.State != StateDepIssued && wd.State != StateDepCounter || wd.QRPayload == "") {
		softatm.WriteError(w, r, log, depositStateError(wd, time.Now(), ""))
		return
	}
	if wd.Kind != KindDeposit && wd.State != StateReserved && wd.State != StateClaimed {
		softatm.WriteError(w, r, log, stateError(wd, time.Now(), ""))
		return
	}
	png, err := code.PNG(wd.QRPayload, qrSizePx)
	if err != nil {
		softatm.WriteError(w, r, log, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(png)
}
