// Package teller serves the staff side of the switch: the teller's kiosk API
// (login, scan, confirm, release, till, the end-of-day till count), the
// finance API (business days, settlement, reconciliation, outbox
// exceptions, till replenishments, collections and counts, banks'
// payments, the cash forecast, and the words every code is shown in) and
// the embedded pages (/kiosk, /finance, /demo/app). It turns HTTP into
// calls on the switch's Service and the ledger; it holds no state of its
// own.
//
// Every state-changing request needs a staff session cookie, the session's
// CSRF token in X-CSRF-Token and an Idempotency-Key, so that a double tap or
// a slow network never pays twice: the second request gets the first answer.
//
// This package may import switch, ledger, their sub-packages, iso (for
// iso.Mask, the one account masker), fixtures (the demo app's accounts)
// and its own sub-packages (teller/words); nothing imports it but cmd/softatm (imports_test.go checks
// both).
package teller

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/auth"
	"github.com/softatm/softatm/teller/words"
)

// API is the teller's and finance's HTTP API.
type API struct {
	Service *atmswitch.Service
	Auth    *auth.Service
	Pool    *pgxpool.Pool
	Log     *slog.Logger
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	softatm.WriteError(w, r, a.Log, err)
}

// AsTeller passes the logged-in teller to h. The route is already behind
// auth.RequireStaff(auth.RoleTeller); the check here keeps h from ever
// running without one.
func (a *API) AsTeller(h func(http.ResponseWriter, *http.Request, atmswitch.Teller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := auth.SessionFrom(r.Context())
		if !ok || s.User.Role != auth.RoleTeller {
			a.fail(w, r, softatm.Errorf(softatm.EUnauthorized, "please log in as a teller"))
			return
		}
		h(w, r, atmswitch.Teller{UserID: s.User.ID.String(), Username: s.User.Username,
			PostOffice: s.User.PostOffice, Kiosk: s.User.Kiosk})
	}
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type sessionView struct {
	Username   string    `json:"username"`
	Role       auth.Role `json:"role"`
	PostOffice string    `json:"post_office,omitempty"`
	Kiosk      string    `json:"kiosk,omitempty"`
	CSRFToken  string    `json:"csrf_token"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func viewSession(s auth.Session) sessionView {
	return sessionView{Username: s.User.Username, Role: s.User.Role, PostOffice: s.User.PostOffice,
		Kiosk: s.User.Kiosk, CSRFToken: s.CSRF, ExpiresAt: s.ExpiresAt}
}

// Login handles POST /v1/teller/login (and /v1/staff/login): any staff role
// may log in; each route then checks the role it needs.
func (a *API) Login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.Auth.Login(r.Context(), req.Username, req.Password, a.Auth.SourceAddr(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Auth.SetSessionCookie(w, r, s)
	atmswitch.WriteJSON(w, http.StatusOK, viewSession(s))
}

// Logout handles POST /v1/staff/logout.
func (a *API) Logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(auth.SessionCookie); err == nil {
		_ = a.Auth.Logout(r.Context(), c.Value)
	}
	a.Auth.ClearSessionCookie(w, r)
	atmswitch.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// Me handles GET /v1/staff/me: the page reloads its CSRF token from here.
func (a *API) Me(w http.ResponseWriter, r *http.Request) {
	s, ok := auth.SessionFrom(r.Context())
	if !ok {
		a.fail(w, r, softatm.Errorf(softatm.EUnauthorized, "please log in"))
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, viewSession(s))
}

type scanView struct {
	// Kind is "deposit" for cash in (the teller counts cash and takes it);
	// absent for a withdrawal (the teller pays cash out).
	Kind atmswitch.Kind `json:"kind,omitempty"`
	// IDRequired: a deposit at the large-cash threshold; the teller must
	// type the citizen's ID number to confirm it.
	IDRequired       bool      `json:"id_required,omitempty"`
	WithdrawalID     uuid.UUID `json:"withdrawal_id"`
	Amount           int64     `json:"amount"`
	Currency         string    `json:"currency"`
	HolderNameMasked string    `json:"holder_name_masked"`
	// HolderName is the full name as the bank holds it, for the ID check.
	// Only this answer carries it: it goes to the teller who has just
	// claimed the code, and nowhere else (see atmswitch.Withdrawal).
	HolderName    string    `json:"holder_name,omitempty"`
	AccountMasked string    `json:"account_masked"`
	Bank          string    `json:"bank"`
	BankName      string    `json:"bank_name"`
	ExpiresAt     time.Time `json:"expires_at"`
	ClaimUntil    time.Time `json:"claim_until"`
}

// Scan handles POST /v1/teller/scan.
func (a *API) Scan(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	var req atmswitch.ScanRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	wd, err := a.Service.Scan(r.Context(), t, req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := scanView{WithdrawalID: wd.ID, Amount: wd.Amount, Currency: wd.Currency, HolderNameMasked: wd.HolderNameMasked,
		HolderName: wd.HolderName, AccountMasked: atmswitch.View(wd).Account, Bank: wd.Bank, ExpiresAt: wd.ExpiresAt, ClaimUntil: wd.ClaimUntil}
	v.BankName = a.Service.BankName(r.Context(), wd.Bank)
	if wd.Kind == atmswitch.KindDeposit {
		if v, err = a.depositView(r, wd, v); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	atmswitch.WriteJSON(w, http.StatusOK, v)
}

type confirmRequest struct {
	WithdrawalID uuid.UUID `json:"withdrawal_id"`
	IDChecked    bool      `json:"id_checked"`
}

// Confirm handles POST /v1/teller/confirm. The teller must say they checked
// the citizen's ID; the page only enables the button after that step.
func (a *API) Confirm(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	var req confirmRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if !req.IDChecked {
		a.fail(w, r, softatm.Errorf(softatm.EInvalid, "check the citizen's ID before paying"))
		return
	}
	rc, err := a.Service.Confirm(r.Context(), t, req.WithdrawalID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The cash is out: whatever happens now, the answer is a receipt. If
	// reading its details fails, the short one from Confirm is printed
	// (the teller can reprint the full one from "My day").
	pr, err := a.Service.PaidReceipt(r.Context(), t, req.WithdrawalID)
	if err != nil {
		a.Log.Warn("reading the receipt's details after a payout", "withdrawal", req.WithdrawalID, "err", err)
		atmswitch.WriteJSON(w, http.StatusOK, receiptView{WithdrawalID: rc.WithdrawalID, Kind: kindCashOut, Amount: rc.Amount,
			Currency: rc.Currency, AmountWords: words.VND(rc.Amount), PaidAt: rc.PaidAt, BusinessDate: rc.BusinessDate,
			PostOffice: rc.PostOffice, Kiosk: rc.Kiosk, Teller: rc.Teller})
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, viewReceipt(pr, false))
}

// kindCashOut is how the cash went, on a receipt: out of the till to the
// citizen.
const kindCashOut = "cash_out"

// receiptView is a receipt as the kiosk prints it.
type receiptView struct {
	ReceiptNo         string    `json:"receipt_no"` // the RRN, which the bank's settlement file carries too
	WithdrawalID      uuid.UUID `json:"withdrawal_id"`
	Kind              string    `json:"kind"`
	Amount            int64     `json:"amount"`
	Currency          string    `json:"currency"`
	AmountWords       string    `json:"amount_words"`
	PaidAt            time.Time `json:"paid_at"`
	BusinessDate      string    `json:"business_date"`
	PostOffice        string    `json:"post_office"`
	PostOfficeName    string    `json:"post_office_name,omitempty"`
	PostOfficeAddress string    `json:"post_office_address,omitempty"`
	Kiosk             string    `json:"kiosk"`
	Teller            string    `json:"teller"`
	Bank              string    `json:"bank,omitempty"`
	BankName          string    `json:"bank_name,omitempty"`
	AccountMasked     string    `json:"account_masked,omitempty"`
	HolderNameMasked  string    `json:"holder_name_masked,omitempty"`
	// VerificationCode is the bank's approval code of the hold: short, and
	// checkable with the bank.
	VerificationCode string `json:"verification_code,omitempty"`
	Reprint          bool   `json:"reprint"`
}

func viewReceipt(pr atmswitch.PaidReceipt, reprint bool) receiptView {
	wd := pr.Withdrawal
	return receiptView{ReceiptNo: wd.RRN, WithdrawalID: wd.ID, Kind: kindCashOut, Amount: wd.Amount, Currency: wd.Currency,
		AmountWords: words.VND(wd.Amount), PaidAt: wd.PaidAt, BusinessDate: wd.BusinessDate.Format("2006-01-02"),
		PostOffice: wd.PostOffice, PostOfficeName: pr.PostOfficeName, PostOfficeAddress: pr.PostOfficeAddress,
		Kiosk: wd.PaidKiosk, Teller: pr.TellerName, Bank: wd.Bank, BankName: pr.BankName,
		AccountMasked: atmswitch.View(wd).Account, HolderNameMasked: wd.HolderNameMasked,
		VerificationCode: wd.ApprovalCode, Reprint: reprint}
}

// Receipt handles GET /v1/teller/receipts/{id}: a reprint of a payout made
// at the teller's post office.
func (a *API) Receipt(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, softatm.Errorf(softatm.ENotFound, "no payout has this id"))
		return
	}
	pr, err := a.Service.PaidReceipt(r.Context(), t, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, viewReceipt(pr, true))
}

type releaseRequest struct {
	WithdrawalID uuid.UUID `json:"withdrawal_id"`
}

// Release handles POST /v1/teller/release.
func (a *API) Release(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	var req releaseRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Service.Release(r.Context(), t, req.WithdrawalID); err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]bool{"released": true})
}

// Till handles GET /v1/teller/till.
func (a *API) Till(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	day, err := a.Service.Till(r.Context(), t)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, day)
}
