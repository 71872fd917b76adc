package main

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
)

// TestReceiptReprint: the teller who paid (and any teller of the same post
// office) gets the full receipt again; a teller of another post office, an
// unpaid code and a made-up id get not_found, and the answer never holds
// the full holder name.
func TestReceiptReprint(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	paid := s.createWithdrawal(t, "9704000000000011", 1_050_000)
	unpaid := s.createWithdrawal(t, "9704000000000011", 50_000)
	teller := s.login(t, "teller1", "teller1-demo")
	if st, raw := s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"qr": paid.QRPayload}, nil); st != http.StatusOK {
		t.Fatalf("scan: %d %s", st, raw)
	}
	type receipt struct {
		No        string    `json:"receipt_no"`
		ID        uuid.UUID `json:"withdrawal_id"`
		Kind      string    `json:"kind"`
		Amount    int64     `json:"amount"`
		Words     string    `json:"amount_words"`
		PO        string    `json:"post_office"`
		POName    string    `json:"post_office_name"`
		POAddress string    `json:"post_office_address"`
		Bank      string    `json:"bank"`
		BankName  string    `json:"bank_name"`
		Account   string    `json:"account_masked"`
		Holder    string    `json:"holder_name_masked"`
		Code      string    `json:"verification_code"`
		Teller    string    `json:"teller"`
		Reprint   bool      `json:"reprint"`
	}
	var first receipt
	if st, raw := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""), map[string]any{"withdrawal_id": paid.ID, "id_checked": true}, &first); st != http.StatusOK {
		t.Fatalf("confirm: %d %s", st, raw)
	}
	var rrn, approval string
	if err := s.Pool.QueryRow(t.Context(), `SELECT rrn, approval_code FROM withdrawals WHERE id = $1`, paid.ID).Scan(&rrn, &approval); err != nil {
		t.Fatal(err)
	}
	want := receipt{No: rrn, ID: paid.ID, Kind: "cash_out", Amount: 1_050_000, Words: "Một triệu không trăm năm mươi nghìn đồng",
		PO: "LS-001", POName: "Buu dien Dong Dang", POAddress: "Dong Dang, Lang Son", Bank: "MB", BankName: "Military Commercial Bank",
		Account: "************0011", Holder: "N***** V** A*", Code: approval, Teller: "teller1"}
	if first != want {
		t.Errorf("the receipt after confirm:\n got %+v\nwant %+v", first, want)
	}

	var again receipt
	st, raw := s.call(t, teller.c, "GET", "/v1/teller/receipts/"+paid.ID.String(), nil, nil, &again)
	if st != http.StatusOK {
		t.Fatalf("reprint: %d %s", st, raw)
	}
	want.Reprint = true
	if again != want {
		t.Errorf("the reprint:\n got %+v\nwant %+v", again, want)
	}

	other := s.login(t, "teller2", "teller2-demo")
	for _, c := range []struct {
		who  *staff
		path string
	}{
		{other, "/v1/teller/receipts/" + paid.ID.String()},    // another post office
		{teller, "/v1/teller/receipts/" + unpaid.ID.String()}, // not paid
		{teller, "/v1/teller/receipts/" + uuid.NewString()},   // no such withdrawal
		{teller, "/v1/teller/receipts/not-a-uuid"},            // not an id
	} {
		st, raw := s.call(t, c.who.c, "GET", c.path, nil, nil, nil)
		if st != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", c.path, st, raw)
		}
	}
	if st, _ := s.call(t, nil, "GET", "/v1/teller/receipts/"+paid.ID.String(), nil, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("a reprint without a session: %d, want 401", st)
	}
}
