package teller

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	atmswitch "github.com/softatm/softatm/switch"
)

// The kiosk's cash-in side ("Nạp tiền · Cash in"): the one scan serves
// both kinds (a deposit code answers with kind "deposit"); a walk-in is
// looked up and started by account number; the confirm sends the credit
// online and answers a receipt only when the bank approved. Any other
// answer of confirm (EDepositNotTaken above all) means: hand the cash back.

// kindCashIn is how the cash went, on a receipt: from the citizen into the
// till.
const kindCashIn = "cash_in"

// depositView completes a scan answer for a deposit.
func (a *API) depositView(r *http.Request, wd atmswitch.Withdrawal, v scanView) (scanView, error) {
	v.Kind = atmswitch.KindDeposit
	need, err := a.Service.IDRequired(r.Context(), wd)
	if err != nil {
		return v, err
	}
	v.IDRequired = need
	return v, nil
}

type lookupRequest struct {
	Account string `json:"account"`
}

// LookupAccount handles POST /v1/teller/deposits/lookup: the holder's name
// of a walk-in's account, as its bank gives it.
func (a *API) LookupAccount(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	var req lookupRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	h, err := a.Service.LookupAccount(r.Context(), t, req.Account)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, h)
}

// WalkIn handles POST /v1/teller/deposits/walkin: a walk-in's deposit,
// claimed by the teller; the answer is a scan answer of kind "deposit".
func (a *API) WalkIn(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	var req atmswitch.WalkInRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	wd, err := a.Service.StartWalkIn(r.Context(), t, req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := scanView{WithdrawalID: wd.ID, Amount: wd.Amount, Currency: wd.Currency, HolderNameMasked: wd.HolderNameMasked,
		HolderName: wd.HolderName, AccountMasked: atmswitch.View(wd).Account, Bank: wd.Bank, ExpiresAt: wd.ExpiresAt, ClaimUntil: wd.ClaimUntil}
	v.BankName = a.Service.BankName(r.Context(), wd.Bank)
	if v, err = a.depositView(r, wd, v); err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, v)
}

type depositConfirmRequest struct {
	DepositID uuid.UUID `json:"deposit_id"`
	// CashCounted: the teller counted the citizen's cash and it is the
	// amount shown; the page enables the button only after that step.
	CashCounted bool `json:"cash_counted"`
	// IDNumber is the citizen's ID number, for a large-cash deposit.
	IDNumber string `json:"id_number"`
}

// ConfirmDeposit handles POST /v1/teller/deposits/confirm.
func (a *API) ConfirmDeposit(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	var req depositConfirmRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if !req.CashCounted {
		a.fail(w, r, softatm.Errorf(softatm.EInvalid, "count the citizen's cash before confirming"))
		return
	}
	rc, err := a.Service.ConfirmDeposit(r.Context(), t, req.DepositID, req.IDNumber)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, viewDepositReceipt(rc, false))
}

// DepositReceipt handles GET /v1/teller/deposits/{id}/receipt: a reprint.
func (a *API) DepositReceipt(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, softatm.Errorf(softatm.ENotFound, "no deposit has this id"))
		return
	}
	rc, err := a.Service.CreditedReceipt(r.Context(), t, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, viewDepositReceipt(rc, true))
}

type depositReleaseRequest struct {
	DepositID uuid.UUID `json:"deposit_id"`
}

// ReleaseDeposit handles POST /v1/teller/deposits/release.
func (a *API) ReleaseDeposit(w http.ResponseWriter, r *http.Request, t atmswitch.Teller) {
	var req depositReleaseRequest
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Service.ReleaseDeposit(r.Context(), t, req.DepositID); err != nil {
		a.fail(w, r, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]bool{"released": true})
}

// viewDepositReceipt is a deposit's receipt: kind cash_in, the time it was
// credited, the bank's approval code.
func viewDepositReceipt(pr atmswitch.DepositReceipt, reprint bool) receiptView {
	v := viewReceipt(pr, reprint)
	v.Kind = kindCashIn
	return v
}

// largeCashLine is a line of the large-cash report.
type largeCashLine struct {
	CreditDate    string    `json:"credit_date"`
	DepositID     uuid.UUID `json:"deposit_id"`
	Bank          string    `json:"bank"`
	AccountMasked string    `json:"account_masked"`
	HolderName    string    `json:"holder_name_masked"`
	Amount        int64     `json:"amount"`
	PostOffice    string    `json:"post_office"`
	IDNumber      string    `json:"id_number"`
	ReceiptNo     string    `json:"receipt_no"`
}

// LargeCash handles GET /v1/finance/large-cash?from=YYYY-MM-DD&to=...: the
// credited deposits that needed the citizen's ID number (finance only).
func (f *Finance) LargeCash(w http.ResponseWriter, r *http.Request) {
	from, err := time.Parse(time.DateOnly, r.URL.Query().Get("from"))
	if err != nil {
		f.API.fail(w, r, softatm.Errorf(softatm.EInvalid, "from must be a date (YYYY-MM-DD)"))
		return
	}
	to := from
	if s := r.URL.Query().Get("to"); s != "" {
		if to, err = time.Parse(time.DateOnly, s); err != nil || to.Before(from) {
			f.API.fail(w, r, softatm.Errorf(softatm.EInvalid, "to must be a date (YYYY-MM-DD) not before from"))
			return
		}
	}
	rows, err := f.API.Service.LargeCash(r.Context(), from, to)
	if err != nil {
		f.API.fail(w, r, err)
		return
	}
	out := make([]largeCashLine, 0, len(rows))
	for _, l := range rows {
		out = append(out, largeCashLine{CreditDate: l.CreditDate.Format(time.DateOnly), DepositID: l.Deposit.ID, Bank: l.Deposit.Bank,
			AccountMasked: atmswitch.View(l.Deposit).Account, HolderName: l.Deposit.HolderNameMasked, Amount: l.Deposit.Amount,
			PostOffice: l.Deposit.PostOffice, IDNumber: l.IDNumber, ReceiptNo: l.Deposit.RRN})
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"deposits": out})
}
