package atmswitch

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/softatm/softatm"
)

// FuzzRequestBodies feeds arbitrary bytes to the JSON decoder of the bank
// and teller APIs and to the request validation behind it: whatever comes
// in, the answer is a coded error or a valid request, never a panic or an
// internal error.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{
		`{"account":"9704000000000011","amount":500000,"currency":"VND","holder_name":"Nguyen Van An","phone_last4":"5611"}`,
		`{"account":"9704000000000011","amount":-1}`,
		`{"account":"","amount":1e30}`,
		`{"qr":"AEBK","numeric":"123456789012","phone_last4":"1234"}`,
		`{"account":"1"} {"account":"2"}`,
		`{"acount":"x"}`,
		`[]`, `null`, ``, `{`, "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	svc := NewService(DefaultConfig(), Deps{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var create CreateRequest
		err := DecodeJSON(httptest.NewRequest("POST", "/v1/withdrawals", bytes.NewReader(body)), &create)
		if err == nil {
			err = svc.validate(&create, Limits{Currency: svc.cfg.Currency, AmountMin: svc.cfg.AmountMin,
				AmountMax: svc.cfg.AmountMax, AmountMultiple: svc.cfg.NoteUnit})
			if err == nil && (create.Amount <= 0 || create.Amount%svc.cfg.NoteUnit != 0 || create.Currency != svc.cfg.Currency) {
				t.Fatalf("validated a bad request: %+v", create)
			}
		}
		switch c := softatm.ErrorCode(err); c {
		case "", softatm.EInvalid, softatm.EInvalidAmount, softatm.EInvalidName:
		default:
			t.Fatalf("create body %q: error code %q (%v)", body, c, err)
		}
		var scan ScanRequest
		err = DecodeJSON(httptest.NewRequest("POST", "/v1/teller/scan", bytes.NewReader(body)), &scan)
		if c := softatm.ErrorCode(err); c != "" && c != softatm.EInvalid {
			t.Fatalf("scan body %q: error code %q (%v)", body, c, err)
		}
	})
}
