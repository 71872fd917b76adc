package teller

import (
	"net/http"

	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/iso"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/code"
)

// Demo is the back end of /demo/app, the stand-in banking app. It plays the
// bank's own backend: the page picks a demo account, and Demo calls the
// switch as that account's bank would. It is served only with -demo, and
// only knows the demo fixtures' accounts.
type Demo struct {
	Service *atmswitch.Service
	Pool    *pgxpool.Pool
	Log     *slog.Logger
}

type demoAccount struct {
	Number     string `json:"number"`
	Masked     string `json:"masked"`
	Bank       string `json:"bank"`
	Holder     string `json:"holder"`
	PhoneLast4 string `json:"phone_last4"`
	// DailyLimit is the bank's own daily limit of the account (0: none),
	// which the app shows beside the switch's limits.
	DailyLimit int64 `json:"daily_limit"`
}

func (d *Demo) accounts() (map[string]fixtures.Account, []demoAccount, error) {
	f, err := fixtures.LoadDemo()
	if err != nil {
		return nil, nil, err
	}
	byNumber := map[string]fixtures.Account{}
	var list []demoAccount
	for _, a := range f.Accounts {
		byNumber[a.Number] = a
		list = append(list, demoAccount{Number: a.Number, Masked: iso.Mask(a.Number),
			Bank: a.Bank, Holder: a.Holder, PhoneLast4: a.Phone[len(a.Phone)-4:], DailyLimit: a.DailyLimit})
	}
	return byNumber, list, nil
}

// Mount registers /demo/api/*.
func (d *Demo) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /demo/api/accounts", d.list)
	mux.HandleFunc("GET /demo/api/limits", d.limits)
	mux.HandleFunc("GET /demo/api/accounts/{number}/active", d.active)
	mux.HandleFunc("POST /demo/api/withdrawals", d.create)
	mux.HandleFunc("POST /demo/api/deposits", d.createDeposit)
	mux.HandleFunc("GET /demo/api/withdrawals/{id}", d.get)
	mux.HandleFunc("POST /demo/api/withdrawals/{id}/cancel", d.cancel)
	mux.HandleFunc("GET /demo/api/withdrawals/{id}/qr.png", d.qr)
}

func (d *Demo) list(w http.ResponseWriter, r *http.Request) {
	_, list, err := d.accounts()
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"accounts": list})
}

type demoCreate struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// limits answers GET /demo/api/limits[?bank=B]: the amount rules a create
// for bank B is held to (the switch's own without a bank), so that the app
// checks what the switch checks and says so before a request.
func (d *Demo) limits(w http.ResponseWriter, r *http.Request) {
	l, err := d.Service.Limits(r.Context(), r.URL.Query().Get("bank"), "")
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, l)
}

// Refusal reasons the app explains. They refine the switch's error code
// (declined, limit_exceeded...) with what the bank's backend knows: the
// response code of the bank's refusal, and its own account's state.
const (
	reasonInsufficientFunds = "insufficient_funds" // the bank: not enough money (51)
	reasonAccountBlocked    = "account_blocked"    // the bank refused (05) an account it has blocked
	reasonBankLimit         = "bank_daily_limit"   // the bank: over the account's own limit (61)
	reasonSwitchLimit       = "daily_limit"        // the switch: over its per-account daily amount
	reasonActiveCode        = "active_code"        // this account already has a live code
)

type demoError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
}

// refuse writes err as the switch would, plus the reason the app shows.
func (d *Demo) refuse(w http.ResponseWriter, r *http.Request, err error, a fixtures.Account) {
	code := softatm.ErrorCode(err)
	if code == softatm.EInternal || code == softatm.EUnavailable {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	var reason string
	switch rc := atmswitch.DeclineCode(err); {
	case rc == "51":
		reason = reasonInsufficientFunds
	case rc == "05" && a.Blocked:
		reason = reasonAccountBlocked
	case rc == "61":
		reason = reasonBankLimit
	case rc == "" && code == softatm.ELimit:
		reason = reasonSwitchLimit
	}
	atmswitch.WriteJSON(w, softatm.HTTPStatus(err), map[string]demoError{"error": {Code: code, Message: softatm.ErrorMessage(err), Reason: reason}})
}

// createRequest reads a demo app's request for a code and finds its demo
// account; on a refusal it has answered and ok is false.
func (d *Demo) createRequest(w http.ResponseWriter, r *http.Request) (req demoCreate, a fixtures.Account, ok bool) {
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return req, a, false
	}
	byNumber, _, err := d.accounts()
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return req, a, false
	}
	if a, ok = byNumber[req.Account]; !ok {
		softatm.WriteError(w, r, d.Log, softatm.Errorf(softatm.EUnknownAccount, "not a demo account"))
	}
	return req, a, ok
}

func (d *Demo) create(w http.ResponseWriter, r *http.Request) {
	req, a, ok := d.createRequest(w, r)
	if !ok {
		return
	}
	// One live code per account: a second one would hold the money twice,
	// and the citizen would not know which to show. The app shows the live
	// one instead (GET .../active), where it can be cancelled.
	live, err := d.Service.Live(r.Context(), a.Bank, a.Number)
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	if len(live) > 0 {
		atmswitch.WriteJSON(w, http.StatusConflict, map[string]demoError{"error": {Code: softatm.EConflict,
			Message: "this account already has a live code", Reason: reasonActiveCode}})
		return
	}
	issued, err := d.Service.Create(r.Context(), a.Bank, atmswitch.CreateRequest{Account: a.Number, Amount: req.Amount,
		Currency: "VND", HolderName: a.Holder, PhoneLast4: a.Phone[len(a.Phone)-4:]})
	if err != nil {
		d.refuse(w, r, err, a)
		return
	}
	v := atmswitch.View(issued.Withdrawal)
	v.NumericCode = code.FormatNumeric(issued.Numeric)
	v.QRPNG = "/demo/api/withdrawals/" + v.ID.String() + "/qr.png"
	atmswitch.WriteJSON(w, http.StatusCreated, v)
}

// active answers GET /demo/api/accounts/{number}/active: the account's live
// codes, newest first, so that the app shows (and can cancel) a code made
// before a reload. The numeric code is not among them: only its hash is
// kept, so it is shown once, when made.
func (d *Demo) active(w http.ResponseWriter, r *http.Request) {
	byNumber, _, err := d.accounts()
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	a, ok := byNumber[r.PathValue("number")]
	if !ok {
		softatm.WriteError(w, r, d.Log, softatm.Errorf(softatm.EUnknownAccount, "not a demo account"))
		return
	}
	live, err := d.Service.Live(r.Context(), a.Bank, a.Number)
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	views := make([]atmswitch.WithdrawalView, 0, len(live))
	for _, wd := range live {
		v := atmswitch.View(wd)
		if v.QRPNG != "" {
			v.QRPNG = "/demo/api/withdrawals/" + v.ID.String() + "/qr.png"
		}
		views = append(views, v)
	}
	atmswitch.WriteJSON(w, http.StatusOK, map[string]any{"withdrawals": views})
}

// withdrawal loads a withdrawal of any demo bank.
func (d *Demo) withdrawal(r *http.Request) (atmswitch.Withdrawal, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return atmswitch.Withdrawal{}, softatm.Errorf(softatm.ENotFound, "withdrawal not found")
	}
	return d.Service.Withdrawal(r.Context(), id)
}

func (d *Demo) get(w http.ResponseWriter, r *http.Request) {
	wd, err := d.withdrawal(r)
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	v := atmswitch.View(wd)
	if v.QRPNG != "" {
		v.QRPNG = "/demo/api/withdrawals/" + v.ID.String() + "/qr.png"
	}
	atmswitch.WriteJSON(w, http.StatusOK, v)
}

func (d *Demo) cancel(w http.ResponseWriter, r *http.Request) {
	wd, err := d.withdrawal(r)
	if err == nil {
		wd, err = d.Service.Cancel(r.Context(), wd.Bank, wd.ID)
	}
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	atmswitch.WriteJSON(w, http.StatusOK, atmswitch.View(wd))
}

func (d *Demo) qr(w http.ResponseWriter, r *http.Request) {
	wd, err := d.withdrawal(r)
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	atmswitch.WriteQR(w, r, d.Log, wd)
}

// createDeposit answers POST /demo/api/deposits: a deposit code for a demo
// account, as its bank's app would ask for it (POST /v1/deposits).
func (d *Demo) createDeposit(w http.ResponseWriter, r *http.Request) {
	req, a, ok := d.createRequest(w, r)
	if !ok {
		return
	}
	issued, err := d.Service.CreateDeposit(r.Context(), a.Bank, atmswitch.DepositRequest{Account: a.Number, Amount: req.Amount,
		Currency: "VND", HolderName: a.Holder, PhoneLast4: a.Phone[len(a.Phone)-4:]})
	if err != nil {
		d.refuse(w, r, err, a)
		return
	}
	v := atmswitch.View(issued.Withdrawal)
	v.NumericCode = code.FormatNumeric(issued.Numeric)
	v.QRPNG = "/demo/api/withdrawals/" + v.ID.String() + "/qr.png"
	atmswitch.WriteJSON(w, http.StatusCreated, v)
}
