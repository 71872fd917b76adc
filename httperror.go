package softatm

import (
	"encoding/json"
	"net/http"
)

// httpStatus is the one table from error code to HTTP status. The metric
// label of an error is its code.
var httpStatus = map[string]int{
	EInvalid:         http.StatusBadRequest,
	EInvalidAmount:   http.StatusUnprocessableEntity,
	EInvalidName:     http.StatusUnprocessableEntity,
	EUnknownAccount:  http.StatusUnprocessableEntity,
	EUnauthorized:    http.StatusUnauthorized,
	EForbidden:       http.StatusForbidden,
	ENotFound:        http.StatusNotFound,
	EConflict:        http.StatusConflict,
	EIdemReused:      http.StatusUnprocessableEntity,
	EInProgress:      http.StatusConflict,
	ECodeInvalid:     http.StatusUnprocessableEntity,
	ECodeExpired:     http.StatusGone,
	ECodeUsed:        http.StatusConflict,
	ECodeClaimed:     http.StatusConflict,
	ECodeCancelled:   http.StatusGone,
	ETillShort:       http.StatusConflict,
	ELimit:           http.StatusUnprocessableEntity,
	EDeclined:        http.StatusPaymentRequired,
	EBankUnavailable: http.StatusServiceUnavailable,
	ELocked:          http.StatusTooManyRequests,
	ERateLimited:     http.StatusTooManyRequests,
	EDayClosed:       http.StatusConflict,
	EUnavailable:     http.StatusServiceUnavailable,
	EInternal:        http.StatusInternalServerError,
}

// HTTPStatus maps an error to its HTTP status.
func HTTPStatus(err error) int {
	if s, ok := httpStatus[ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the one JSON error shape of every API:
// {"error": {"code": "...", "message": "..."}}.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteErrorJSON writes the error shape with the given status.
func WriteErrorJSON(w http.ResponseWriter, status int, code, message string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, message
	WriteJSON(w, status, b)
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
