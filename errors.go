// Package softatm holds the one error vocabulary of the switch. Every domain
// package returns *Error values with one of the codes below; the HTTP layer
// maps each code, in one table, to an HTTP status and a metric label, and the
// ISO 8583 layer to a response code. A caller outside the switch (a kiosk, a
// bank app) only ever sees the code and the public message, never the text of
// an internal error.
//
// This package must not import any other softatm package.
package softatm

import (
	"errors"
	"fmt"
)

// Stable error codes. They are part of the API: never rename one.
const (
	EInvalid         = "invalid_request"        // malformed input
	EInvalidAmount   = "invalid_amount"         // amount <= 0, over the limit, not a multiple of the note
	EInvalidName     = "invalid_name"           // a name with control, bidi-override or markup characters
	EUnknownAccount  = "unknown_account"        // the bank does not know the account
	EUnauthorized    = "unauthorized"           // no or bad credentials
	EForbidden       = "forbidden"              // authenticated, but not allowed
	ENotFound        = "not_found"              //
	EConflict        = "conflict"               // the state does not allow this
	EIdemReused      = "idempotency_key_reused" // same key, different body (422)
	EInProgress      = "request_in_progress"    // same key, first request still running (409)
	ECodeInvalid     = "code_invalid"           // bad signature, unknown key, tampered, bad check digit
	ECodeExpired     = "code_expired"           //
	ECodeUsed        = "code_already_used"      // paid, completed
	ECodeClaimed     = "code_claimed_elsewhere" // another teller holds the claim
	ECodeCancelled   = "code_cancelled"         // cancelled, expired, failed, declined
	ETillShort       = "till_insufficient"      // the post office does not hold enough cash
	ELimit           = "limit_exceeded"         // a daily limit would be exceeded
	EDeclined        = "declined"               // the bank said no
	EBankUnavailable = "bank_unavailable"       // no usable answer from the bank
	ELocked          = "locked_out"             // too many failed attempts
	ERateLimited     = "rate_limited"           //
	EDayClosed       = "day_closed"             // the business day is closed
	EUnavailable     = "unavailable"            // a dependency (Redis, database) is down
	EInternal        = "internal"               // a bug or an unexpected failure
)

// Error is a domain error with a stable code and a message safe to show to
// the caller. Err, if set, is the internal cause: it is logged, never shown.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted public message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and public message whose cause is err.
func Wrap(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the public message of err: an *Error's message, or a
// generic text for anything else, so that internal details never leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
