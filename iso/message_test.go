package iso

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2025, 3, 14, 2, 5, 9, 0, time.UTC) // 09:05:09 in Vietnam

func testAuth() AuthRequest {
	return AuthRequest{
		STAN: "000123", RRN: "507302000123", TransmittedAt: testTime,
		Account: "9704001234560011", Amount: 1_500_000, Currency: CurrencyVND,
		TerminalID: "KIOSK001", CardAcceptor: "LS-001", AcceptorName: "Bưu điện Lạng Sơn",
	}
}

func testAdvice() AdviceRequest {
	a := testAuth()
	return AdviceRequest{
		STAN: "000124", RRN: a.RRN, TransmittedAt: testTime.Add(time.Minute),
		Account: a.Account, Amount: a.Amount, Currency: a.Currency, ApprovalCode: "A1B2C3",
		TerminalID: a.TerminalID, CardAcceptor: a.CardAcceptor, AcceptorName: a.AcceptorName,
		Original: Original{MTI: "0100", STAN: a.STAN, TransmittedAt: a.TransmittedAt, AcquirerID: DefaultAcquirerID},
	}
}

// field1987 is the 1987 standard's format of the fields we use, written out
// independently of Spec: a fixed length, or the width of the length prefix.
var field1987 = map[int]struct{ fixed, llvar int }{
	2: {llvar: 2}, 3: {fixed: 6}, 4: {fixed: 12}, 7: {fixed: 10}, 11: {fixed: 6},
	12: {fixed: 6}, 13: {fixed: 4}, 15: {fixed: 4}, 32: {llvar: 2}, 37: {fixed: 12},
	38: {fixed: 6}, 39: {fixed: 2}, 41: {fixed: 8}, 42: {fixed: 15}, 43: {fixed: 40}, 48: {llvar: 3},
	49: {fixed: 3}, 70: {fixed: 3}, 90: {fixed: 42}, 102: {llvar: 2},
}

// parse1987 reads a 1987 ASCII message the way any other library would: MTI,
// primary bitmap as 16 hex characters, a secondary bitmap only when bit 1 is
// set, then each present field in order.
func parse1987(t *testing.T, b []byte) (mti, bitmapHex string, fields map[int]string) {
	t.Helper()
	s := string(b)
	mti, s = s[:4], s[4:]
	bm, err := hex.DecodeString(s[:16])
	if err != nil {
		t.Fatalf("primary bitmap %q: %v", s[:16], err)
	}
	bitmapHex, s = s[:16], s[16:]
	if bm[0]&0x80 != 0 {
		sec, err := hex.DecodeString(s[:16])
		if err != nil {
			t.Fatalf("secondary bitmap: %v", err)
		}
		bm = append(bm, sec...)
		bitmapHex, s = bitmapHex+s[:16], s[16:]
	}
	fields = map[int]string{}
	for i := 2; i <= len(bm)*8; i++ {
		if bm[(i-1)/8]&(0x80>>((i-1)%8)) == 0 || i == 65 {
			continue
		}
		f, ok := field1987[i]
		if !ok {
			t.Fatalf("field %d present but not in our profile", i)
		}
		n := f.fixed
		if f.llvar > 0 {
			n, err = strconv.Atoi(s[:f.llvar])
			if err != nil {
				t.Fatalf("field %d length: %v", i, err)
			}
			s = s[f.llvar:]
		}
		fields[i], s = s[:n], s[n:]
	}
	if s != "" {
		t.Fatalf("%d bytes left after the last field: %q", len(s), s)
	}
	return mti, bitmapHex, fields
}

func TestAuthRequestReadableByAny1987Parser(t *testing.T) {
	t.Parallel()
	m, err := testAuth().Message(DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	mti, bitmapHex, f := parse1987(t, b)
	if mti != "0100" {
		t.Errorf("MTI %q", mti)
	}
	// Fields 3 4 7 11 12 13 32 37 41 42 43 49 and 102: secondary bitmap
	// present because of 102.
	if want := "B238000108E08000" + "0000000004000000"; bitmapHex != want {
		t.Errorf("bitmap %s, want %s", bitmapHex, want)
	}
	want := map[int]string{
		3: "010000", 4: "000001500000", 7: "0314020509", 11: "000123", 12: "090509", 13: "0314",
		32: "970400", 37: "507302000123", 41: "KIOSK001", 42: "LS-001         ",
		43: "Buu dien Lang Son                       ", 49: "704", 102: "9704001234560011",
	}
	for id, v := range want {
		if f[id] != v {
			t.Errorf("field %d = %q, want %q", id, f[id], v)
		}
	}
	if len(f) != len(want) {
		t.Errorf("fields %v, want exactly %v", keys(f), keys(want))
	}
}

func TestPrimaryBitmapOnlyWithoutHighFields(t *testing.T) {
	t.Parallel()
	m := &Message{MTI: "0110", STAN: "000001", ResponseCode: "00", RRN: "507302000123", TerminalID: "KIOSK001"}
	b, err := Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	mti, bitmapHex, f := parse1987(t, b)
	if mti != "0110" || bitmapHex != "002000000A800000" || len(f) != 4 {
		t.Fatalf("got %s %s %v", mti, bitmapHex, f)
	}
}

func TestRoundTripEveryMTI(t *testing.T) {
	t.Parallel()
	for _, m := range sampleMessages(t) {
		t.Run(m.MTI, func(t *testing.T) {
			b, err := Pack(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unpack(b)
			if err != nil {
				t.Fatal(err)
			}
			if *got != *m {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, *m)
			}
			parse1987(t, b)
		})
	}
}

func TestUnpackRejects(t *testing.T) {
	t.Parallel()
	good, err := Pack(&Message{MTI: "0810", STAN: "000001", ResponseCode: "00", NetworkCode: "001"})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short MTI":      []byte("08"),
		"trailing bytes": append(append([]byte{}, good...), 'X'),
		"truncated":      good[:len(good)-1],
		"bad bitmap":     []byte("0800ZZZZZZZZZZZZZZZZ"),
		"letters in MTI": append([]byte("08A0"), good[4:]...),
	} {
		if _, err := Unpack(b); err == nil {
			t.Errorf("%s: unpacked", name)
		}
	}
}

func TestFieldEncodingErrors(t *testing.T) {
	t.Parallel()
	for name, mut := range map[string]func(*AuthRequest){
		"stan":        func(r *AuthRequest) { r.STAN = "12" },
		"rrn":         func(r *AuthRequest) { r.RRN = "1" },
		"amount":      func(r *AuthRequest) { r.Amount = -1 },
		"huge amount": func(r *AuthRequest) { r.Amount = 1_000_000_000_000 },
		"currency":    func(r *AuthRequest) { r.Currency = "VND" },
		"terminal":    func(r *AuthRequest) { r.TerminalID = "TOOLONGTERM" },
		"no terminal": func(r *AuthRequest) { r.TerminalID = "" },
		"account":     func(r *AuthRequest) { r.Account = strings.Repeat("1", 29) },
		"no time":     func(r *AuthRequest) { r.TransmittedAt = time.Time{} },
	} {
		r := testAuth()
		mut(&r)
		if _, err := r.Message(DefaultAcquirerID); err == nil {
			t.Errorf("%s: built", name)
		} else if strings.Contains(err.Error(), "9704001234560011") {
			t.Errorf("%s: error shows the account: %v", name, err)
		}
	}
}

func TestOriginalField90(t *testing.T) {
	t.Parallel()
	o := Original{MTI: "0100", STAN: "000123", TransmittedAt: testTime, AcquirerID: "970400"}
	s, err := o.Field90()
	if err != nil {
		t.Fatal(err)
	}
	if want := "0100000123031402050900000970400" + "00000000000"; s != want {
		t.Fatalf("field 90 %q, want %q", s, want)
	}
	got, err := ParseOriginal(s, testTime.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got != o {
		t.Fatalf("parsed %+v, want %+v", got, o)
	}
	// Across new year: a December original seen in January is last year's.
	jan := time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)
	dec, err := ParseTransmissionTime("1231235900", jan)
	if err != nil || dec.Year() != 2025 {
		t.Fatalf("got %v %v", dec, err)
	}
}

func TestReadFrame(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	for _, p := range []string{"0800a", "0810bc"} {
		if err := WriteFrame(&buf, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	buf.Write([]byte{0, 0}) // keep-alive
	if got := hex.EncodeToString(buf.Bytes()[:7]); got != "00053038303061" {
		t.Fatalf("header: %s", got)
	}
	for _, want := range []string{"0800a", "0810bc", ""} {
		p, err := ReadFrame(&buf)
		if err != nil || string(p) != want {
			t.Fatalf("got %q %v, want %q", p, err, want)
		}
	}
	for name, b := range map[string][]byte{
		"half header": {0},
		"short body":  {0, 5, '0'},
		"over max":    {0xff, 0xff},
	} {
		if _, err := ReadFrame(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: read", name)
		}
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"9704001234560011": "************0011", "123": "***", "": "", "12345": "*2345"} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNextSTANWraps(t *testing.T) {
	t.Parallel()
	c := &Client{}
	c.stan.Store(999998 - 1)
	for _, want := range []string{"999998", "999999", "000001", "000002"} {
		if got := c.NextSTAN(); got != want {
			t.Fatalf("NextSTAN %s, want %s", got, want)
		}
	}
}

func keys(m map[int]string) []int {
	var k []int
	for id := range m {
		k = append(k, id)
	}
	return k
}

// sampleMessages is one message of each MTI on the link.
func sampleMessages(t testing.TB) []*Message {
	t.Helper()
	auth, err := testAuth().Message(DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	adv := testAdvice()
	advice, err := adv.Message(MTIAdvice, DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	adv.Repeat = true
	adviceRepeat, err := adv.Message(MTIAdvice, DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	adv.Repeat, adv.ApprovalCode = false, ""
	reversal, err := adv.Message(MTIReversal, DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	adv.Repeat = true
	reversalRepeat, err := adv.Message(MTIReversal, DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	reply := func(req *Message, rc, code string) *Message {
		r := *req
		r.MTI, r.ResponseCode, r.ApprovalCode, r.AcceptorName, r.OriginalData = ResponseMTI(req.MTI), rc, code, "", ""
		r.SettlementDate = "0314"
		return &r
	}
	signOn := networkMessage(NetworkSignOn, "000001", testTime, DefaultAcquirerID)
	echo := networkMessage(NetworkEcho, "000002", testTime, DefaultAcquirerID)
	signOff := networkMessage(NetworkSignOff, "000003", testTime, DefaultAcquirerID)
	signOnReply := *signOn
	signOnReply.MTI, signOnReply.ResponseCode = MTINetworkResponse, RCApproved
	// Deposits (deposit.go), appended so that the captured files above
	// keep their names: a 0200 and its 0210, its 0420, and an account
	// verification with the holder's name in field 48.
	credit, err := CreditRequest(testAuth()).Message(DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	depAdv := testAdvice()
	depAdv.ApprovalCode, depAdv.ProcessingCode, depAdv.Original.MTI = "", ProcessingDeposit, MTIFinancialRequest
	depReversal, err := depAdv.Message(MTIReversal, DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	a := testAuth()
	verify, err := VerifyRequest{STAN: a.STAN, RRN: a.RRN, TransmittedAt: a.TransmittedAt, Account: a.Account, Currency: a.Currency,
		TerminalID: a.TerminalID, CardAcceptor: a.CardAcceptor, AcceptorName: a.AcceptorName}.Message(DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	verified := reply(verify, RCApproved, "")
	verified.AdditionalData = "NGUYEN VAN AN"
	return []*Message{
		auth, reply(auth, RCApproved, "A1B2C3"), reply(auth, RCInsufficientFunds, ""),
		advice, adviceRepeat, reply(advice, RCApproved, "A1B2C3"),
		reversal, reversalRepeat, reply(reversal, RCApproved, ""),
		signOn, echo, signOff, &signOnReply,
		credit, reply(credit, RCApproved, "D1E2F3"), depReversal, verify, verified,
	}
}

// TestWriteTestdata regenerates the captured messages under testdata/ (one
// hex file per message) when ISO_WRITE_TESTDATA=1; otherwise it checks they
// still unpack, so a change of the wire profile is noticed.
func TestWriteTestdata(t *testing.T) {
	dir := filepath.Join("testdata", "messages")
	if os.Getenv("ISO_WRITE_TESTDATA") == "1" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, m := range sampleMessages(t) {
			b, err := Pack(m)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, fmt.Sprintf("%s_%02d.hex", m.MTI, i))
			if err := os.WriteFile(name, []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.hex"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured messages under %s (run with ISO_WRITE_TESTDATA=1): %v", dir, err)
	}
	for _, f := range files {
		b := mustHex(t, f)
		m, err := Unpack(b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !strings.HasPrefix(filepath.Base(f), m.MTI) {
			t.Errorf("%s holds a %s", f, m.MTI)
		}
		parse1987(t, b)
	}
}

func mustHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}
