// Package softatm holds the one error vocabulary of the switch and its one
// HTTP error writer. Every domain package returns *Error values with one of
// the codes below; WriteError (httperror.go) maps each code, in one table, to
// an HTTP status, and uses the code itself as the metric outcome label. A
// caller outside the switch (a kiosk, a bank app) only ever sees the code and
// the public message, never the text of an internal error.
//
// No error is mapped to an ISO 8583 response code: the switch is the
// acquirer, so it never answers a bank's financial request with one. The
// mapping runs the other way, from the issuer's response code to a code here,
// in the switch (declineErrors in switch/service.go).
//
// This package must not import any other softatm package (imports_test.go
// checks it): every other package imports this one.
package softatm

import (
	"errors"
	"fmt"
)

// Stable error codes. They are part of the API: never rename one.
const (
	EInvalid          = "invalid_request"            // malformed input
	EInvalidAmount    = "invalid_amount"             // amount <= 0, over the limit, not a multiple of the note
	EInvalidName      = "invalid_name"               // a name with control, bidi-override or markup characters
	EUnknownAccount   = "unknown_account"            // the bank does not know the account
	EUnauthorized     = "unauthorized"               // no or bad credentials
	EForbidden        = "forbidden"                  // authenticated, but not allowed
	EAccountNotOfBank = "account_not_of_client_bank" // the account is in no range of the calling client's bank
	ENotFound         = "not_found"                  //
	EConflict         = "conflict"                   // the state does not allow this
	EIdemReused       = "idempotency_key_reused"     // same key, different body (422)
	EInProgress       = "request_in_progress"        // same key, first request still running (409)
	ETooLarge         = "request_too_large"          // the request body is over its cap (413)
	ECodeInvalid      = "code_invalid"               // bad signature, unknown key, tampered, bad check digit
	ECodeExpired      = "code_expired"               //
	ECodeUsed         = "code_already_used"          // paid, completed
	ECodeClaimed      = "code_claimed_elsewhere"     // another teller holds the claim
	ECodeCancelled    = "code_cancelled"             // cancelled, expired, failed, declined
	ENumericBlocked   = "code_numeric_blocked"       // too many wrong phone digits for this code: only its QR code pays
	ETillShort        = "till_insufficient"          // the post office does not hold enough cash
	ELimit            = "limit_exceeded"             // a limit would be exceeded: an account's over 24 h, a post office's per business day
	EDeclined         = "declined"                   // the bank said no
	EBankUnavailable  = "bank_unavailable"           // no usable answer from the bank
	EBankReplyInvalid = "bank_reply_invalid"         // the bank's answer did not match the request: nothing reserved, reversal queued
	ELocked           = "locked_out"                 // too many failed attempts
	ERateLimited      = "rate_limited"               //
	EDayClosed        = "day_closed"                 // the business day is closed
	EUnavailable      = "unavailable"                // a dependency (Redis, database) is down
	EInternal         = "internal"                   // a bug or an unexpected failure
	EDayNotOver       = "day_not_over"               // a bank's cut-off for the day has not passed yet: the day cannot close
	EDayOpenItems     = "day_has_open_items"         // the day still has open items: closing it needs a reason
	EFileOtherBank    = "settlement_file_other_bank" // the settlement file is another bank's
	EFileOtherDate    = "settlement_file_other_date" // the settlement file is of another business date
	EFileImported     = "settlement_file_imported"   // this very file was imported before (same checksum)
	EFileInvalid      = "settlement_file_invalid"    // the settlement file has bad lines (each is listed)
	EMethod           = "method_not_allowed"         // the path exists, not with this method (405, Allow lists those it has)
	// deposits (cash in)
	ETillFull        = "till_cash_cap"      // the deposit would put the till over its cash cap (insured amount): refused before counting
	EIDNumberNeeded  = "id_number_required" // a large-cash deposit: the teller must type the citizen's ID number
	EDepositNotTaken = "deposit_not_taken"  // the bank did not credit the deposit: hand the cash back (declined, no answer, or answered too late: reversed)
	// The bank credited the deposit and the switch cannot tell whether it
	// recorded it (the database was lost at that moment): the cash stays
	// apart, neither receipted nor handed back, until the same confirm,
	// sent again, gets the receipt or deposit_not_taken.
	EDepositUnknown = "deposit_outcome_unknown"
	// No PostgreSQL primary is reachable (a failover is under way): nothing
	// was refused, try again after the Retry-After the answer carries.
	EDatabaseUnavailable = "database_unavailable"
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
