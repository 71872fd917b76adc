package softatm

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
)

// httpStatus is the one table from error code to HTTP status. The metric
// label of an error is its code. A code missing here is a bug: WriteError
// answers it as EInternal.
var httpStatus = map[string]int{
	EInvalid:             http.StatusBadRequest,
	EInvalidAmount:       http.StatusUnprocessableEntity,
	EInvalidName:         http.StatusUnprocessableEntity,
	EUnknownAccount:      http.StatusUnprocessableEntity,
	EUnauthorized:        http.StatusUnauthorized,
	EForbidden:           http.StatusForbidden,
	EAccountNotOfBank:    http.StatusForbidden,
	ENotFound:            http.StatusNotFound,
	EConflict:            http.StatusConflict,
	EIdemReused:          http.StatusUnprocessableEntity,
	EInProgress:          http.StatusConflict,
	ETooLarge:            http.StatusRequestEntityTooLarge,
	ECodeInvalid:         http.StatusUnprocessableEntity,
	ECodeExpired:         http.StatusGone,
	ECodeUsed:            http.StatusConflict,
	ECodeClaimed:         http.StatusConflict,
	ECodeCancelled:       http.StatusGone,
	ENumericBlocked:      http.StatusLocked,
	ETillShort:           http.StatusConflict,
	ELimit:               http.StatusUnprocessableEntity,
	EDeclined:            http.StatusPaymentRequired,
	EBankUnavailable:     http.StatusServiceUnavailable,
	EBankReplyInvalid:    http.StatusBadGateway,
	ELocked:              http.StatusTooManyRequests,
	ERateLimited:         http.StatusTooManyRequests,
	EDayClosed:           http.StatusConflict,
	EUnavailable:         http.StatusServiceUnavailable,
	EInternal:            http.StatusInternalServerError,
	EDayNotOver:          http.StatusConflict,
	EDayOpenItems:        http.StatusConflict,
	EFileOtherBank:       http.StatusUnprocessableEntity,
	EFileOtherDate:       http.StatusUnprocessableEntity,
	EFileImported:        http.StatusConflict,
	EFileInvalid:         http.StatusUnprocessableEntity,
	EMethod:              http.StatusMethodNotAllowed,
	ETillFull:            http.StatusConflict,
	EIDNumberNeeded:      http.StatusUnprocessableEntity,
	EDepositNotTaken:     http.StatusPaymentRequired,
	EDepositUnknown:      http.StatusServiceUnavailable,
	EDatabaseUnavailable: http.StatusServiceUnavailable,
}

// WithJSONMuxErrors answers what mux itself refuses (no route: 404; a
// route without this method: 405, with its Allow header) in the one JSON
// error shape, as every handler's refusals are, instead of ServeMux's plain
// text.
func WithJSONMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// The mux's own refusal: learn its status (and Allow) without
		// letting it write its text.
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			WriteError(w, r, nil, Errorf(EMethod, "method %s is not allowed here", r.Method))
		case http.StatusNotFound:
			WriteError(w, r, nil, Errorf(ENotFound, "no such path"))
		default: // a redirect (a path to clean): let the mux answer it
			mux.ServeHTTP(w, r)
		}
	})
}

// statusProbe is a ResponseWriter that keeps the status and headers
// written to it and drops the body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}
func (p *statusProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// HTTPStatus maps an error to its HTTP status.
func HTTPStatus(err error) int {
	if s, ok := httpStatus[ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// internalMessage is all a caller is told of an internal error.
const internalMessage = "internal error"

// WriteError is the one writer of HTTP errors, for every API of the switch
// (bank API, teller, finance, authentication, idempotency). It writes err as
// {"error": {"code", "message"}} with the status httpStatus gives its code,
// and records the code as the request's metric outcome (see WithOutcome).
//
// An internal error (EInternal, a code missing from the table, or an error
// that is not an *Error) is logged here with its cause and reaches the
// caller only as "internal error"; any other 5xx is logged too. log may be
// nil (nothing is logged). To log more about the request, pass a logger
// with attributes (log.With).
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := ErrorCode(err)
	if (code == EInternal || code == EUnavailable) && DatabaseUnavailable(err) {
		// The database's primary is gone (failover): the request may be
		// retried as it is, and must not read as the switch's bug.
		code, err = EDatabaseUnavailable, Wrap(EDatabaseUnavailable, databaseUnavailableMessage, err)
	}
	status, known := httpStatus[code]
	message := ErrorMessage(err)
	if !known || code == EInternal {
		code, status, message = EInternal, http.StatusInternalServerError, internalMessage
	}
	if status >= http.StatusInternalServerError && log != nil {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"code", code, "err", err)
	}
	SetOutcome(r, code)
	if secs, ok := retryAfterS[code]; ok {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, message
	WriteJSON(w, status, b)
}

// Outcome is the metric outcome label of one HTTP request: "ok" until
// WriteError writes an error, then that error's code. The instrumenting
// middleware puts one in the request's context (WithOutcome) and reads it
// when the handler returns; it lives here, beside WriteError, so that every
// HTTP package can set it without importing the switch.
//
// An Outcome belongs to one request: WriteError sets it while the handler
// runs and the middleware reads it after the handler returned, so it needs
// no lock.
type Outcome struct{ code string }

// Label returns "ok" or the code of the error written.
func (o *Outcome) Label() string {
	if o.code == "" {
		return "ok"
	}
	return o.code
}

type outcomeKey struct{}

// SetOutcome records code as r's metric outcome, for an error answer not
// written by WriteError: a stored error replayed by the idempotency layer
// (whose body WriteError wrote the first time).
func SetOutcome(r *http.Request, code string) {
	if o, ok := r.Context().Value(outcomeKey{}).(*Outcome); ok {
		o.code = code
	}
}

// WithOutcome returns ctx carrying a new Outcome, and that Outcome.
func WithOutcome(ctx context.Context) (context.Context, *Outcome) {
	o := new(Outcome)
	return context.WithValue(ctx, outcomeKey{}, o), o
}

// ErrorBody is the one JSON error shape of every API:
// {"error": {"code": "...", "message": "..."}}.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteJSON writes v as JSON with the given status; API answers are never
// cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
