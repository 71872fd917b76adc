package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/code"
)

// TestHolderNameOnlyToTheTeller: the full holder name a bank sends with a
// create is stored sealed, given to the teller who scans the code (for the
// ID check), and appears nowhere else: not in any log line, not in any
// answer to the bank client, not in the QR payload, not in clear in the
// database, not on the receipt or the till.
func TestHolderNameOnlyToTheTeller(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := startSystemLogging(t, &logs)
	const name = "Nguyễn Thị Hồng Nhung"
	lookFor := []string{name, strings.ToUpper(name), "Hồng Nhung", "HỒNG NHUNG"}

	// What the bank client is told, every answer kept.
	var bankAnswers []string
	var v atmswitch.WithdrawalView
	status, raw := s.call(t, nil, "POST", "/v1/withdrawals", s.bankHeaders(""), map[string]any{
		"account": "9704000000000011", "amount": 500_000, "currency": "VND", "holder_name": name, "phone_last4": "5611",
	}, &v)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, raw)
	}
	bankAnswers = append(bankAnswers, string(raw))
	if v.QRPayload == "" {
		t.Fatal("no QR payload in the create answer")
	}
	_, raw = s.call(t, nil, "GET", "/v1/withdrawals/"+v.ID.String(), s.bankHeaders(""), nil, nil)
	bankAnswers = append(bankAnswers, string(raw))

	// The QR payload, as text and as decoded fields.
	p, _, _, err := code.Decode(v.QRPayload)
	if err != nil {
		t.Fatal(err)
	}
	qrTexts := []string{v.QRPayload, p.Bank, p.Currency}

	// In the database: sealed, bound to its row.
	var sealed, row string
	if err := s.Pool.QueryRow(context.Background(), `SELECT holder_name_sealed, row_to_json(w)::text FROM withdrawals w WHERE id = $1`,
		v.ID).Scan(&sealed, &row); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "sealed.v1.") {
		t.Errorf("holder_name_sealed is %q, want a sealed value", sealed)
	}

	// The teller who scans sees the full name, and the masked one.
	teller := s.login(t, "teller1", "teller1-demo")
	var scan struct {
		ID         uuid.UUID `json:"withdrawal_id"`
		HolderName string    `json:"holder_name"`
		Masked     string    `json:"holder_name_masked"`
	}
	if st, raw := s.call(t, teller.c, "POST", "/v1/teller/scan", teller.headers(""), map[string]string{"qr": v.QRPayload}, &scan); st != http.StatusOK {
		t.Fatalf("scan: %d %s", st, raw)
	}
	if scan.HolderName != name {
		t.Errorf("the teller's scan answer has holder_name %q, want %q", scan.HolderName, name)
	}
	if scan.Masked != atmswitch.MaskName(name) {
		t.Errorf("holder_name_masked %q, want %q", scan.Masked, atmswitch.MaskName(name))
	}
	_, receipt := s.call(t, teller.c, "POST", "/v1/teller/confirm", teller.headers(""), map[string]any{"withdrawal_id": v.ID, "id_checked": true}, nil)
	_, till := s.call(t, teller.c, "GET", "/v1/teller/till", nil, nil, nil)
	s.waitState(t, v.ID, "completed")
	_, raw = s.call(t, nil, "GET", "/v1/withdrawals/"+v.ID.String(), s.bankHeaders(""), nil, nil)
	bankAnswers = append(bankAnswers, string(raw))

	places := map[string][]string{
		"the log":               {logs.String()},
		"an answer to the bank": bankAnswers,
		"the QR payload":        qrTexts,
		"the database row":      {row},
		"the receipt":           {string(receipt)},
		"the till":              {string(till)},
	}
	for where, texts := range places {
		for _, text := range texts {
			for _, n := range lookFor {
				if strings.Contains(text, n) || strings.Contains(text, jsonEscaped(n)) {
					t.Errorf("the full holder name (%q) is in %s", n, where)
				}
			}
		}
	}
}

// jsonEscaped is s as encoding/json may write it with \u escapes.
func jsonEscaped(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 {
			b.WriteRune(r)
			continue
		}
		b.WriteString(`\u`)
		const hex = "0123456789abcdef"
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	return b.String()
}
