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
	EDatabaseUnavailable: http.StatusServiceUnavailable,
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
	if o, ok := r.Context().Value(outcomeKey{}).(*Outcome); ok {
		o.code = code
	}
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
