package atmswitch

import (
	"net/http"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/switch/idem"
)

// CreateDeposit handles POST /v1/deposits: a deposit code for one of the
// calling bank's accounts (deposit.go). The answer is a WithdrawalView of
// kind "deposit", with the QR payload and the numeric code shown once; GET
// /v1/withdrawals/{id}, its qr.png and cancel serve deposits too.
func (a *BankAPI) CreateDeposit(w http.ResponseWriter, r *http.Request) {
	bank, ok := a.bank(w, r)
	if !ok {
		return
	}
	var req DepositRequest
	if err := DecodeJSON(r, &req); err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	req.Key = idem.KeyFrom(r.Context())
	if a.ClientOf != nil {
		req.Client = a.ClientOf(r)
	}
	issued, err := a.Service.CreateDeposit(r.Context(), bank, req)
	if err != nil {
		softatm.WriteError(w, r, a.Log, err)
		return
	}
	v := View(issued.Withdrawal)
	v.NumericCode = issued.Numeric
	WriteJSON(w, http.StatusCreated, v)
}
