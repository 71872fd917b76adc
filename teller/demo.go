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
			Bank: a.Bank, Holder: a.Holder, PhoneLast4: a.Phone[len(a.Phone)-4:]})
	}
	return byNumber, list, nil
}

// Mount registers /demo/api/*.
func (d *Demo) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /demo/api/accounts", d.list)
	mux.HandleFunc("POST /demo/api/withdrawals", d.create)
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

func (d *Demo) create(w http.ResponseWriter, r *http.Request) {
	var req demoCreate
	if err := atmswitch.DecodeJSON(r, &req); err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	byNumber, _, err := d.accounts()
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	a, ok := byNumber[req.Account]
	if !ok {
		softatm.WriteError(w, r, d.Log, softatm.Errorf(softatm.EUnknownAccount, "not a demo account"))
		return
	}
	issued, err := d.Service.Create(r.Context(), a.Bank, atmswitch.CreateRequest{Account: a.Number, Amount: req.Amount,
		Currency: "VND", HolderName: a.Holder, PhoneLast4: a.Phone[len(a.Phone)-4:]})
	if err != nil {
		softatm.WriteError(w, r, d.Log, err)
		return
	}
	v := atmswitch.View(issued.Withdrawal)
	v.NumericCode = code.FormatNumeric(issued.Numeric)
	v.QRPNG = "/demo/api/withdrawals/" + v.ID.String() + "/qr.png"
	atmswitch.WriteJSON(w, http.StatusCreated, v)
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
