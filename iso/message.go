package iso

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/moov-io/iso8583"
)

// MaxFrameBytes bounds one frame's payload. Our largest message is under 400
// bytes; anything near the 2-byte header's 65535 limit is a broken peer or
// lost framing, and reading it would only delay noticing.
const MaxFrameBytes = 8192

// ErrFrame reports a frame that cannot be read: bad length header or a
// payload that is not one well-formed message. After a framing error the
// stream is out of step and the connection must be closed.
var ErrFrame = errors.New("iso: bad frame")

// Message is one ISO 8583 message of our profile as plain strings, exactly
// as on the wire once packed: fixed fields must already have their exact
// length (use the Set helpers or the request builders). Empty fields are not
// sent.
type Message struct {
	MTI                  string `iso8583:"0"`
	PAN                  string `iso8583:"2"`
	ProcessingCode       string `iso8583:"3"`
	Amount               string `iso8583:"4"`
	TransmissionDateTime string `iso8583:"7"`
	STAN                 string `iso8583:"11"`
	LocalTime            string `iso8583:"12"`
	LocalDate            string `iso8583:"13"`
	SettlementDate       string `iso8583:"15"`
	AcquirerID           string `iso8583:"32"`
	RRN                  string `iso8583:"37"`
	ApprovalCode         string `iso8583:"38"`
	ResponseCode         string `iso8583:"39"`
	TerminalID           string `iso8583:"41"`
	CardAcceptor         string `iso8583:"42"`
	AcceptorName         string `iso8583:"43"`
	// AdditionalData is field 48 (LLL ans..999): in the 0110 answering an
	// account verification (deposit.go), the account holder's name.
	AdditionalData string `iso8583:"48"`
	Currency       string `iso8583:"49"`
	NetworkCode    string `iso8583:"70"`
	OriginalData   string `iso8583:"90"`
	Account        string `iso8583:"102"`
}

// AccountID returns the account identification: field 102, or field 2 when
// a peer sends the account as a PAN.
func (m *Message) AccountID() string {
	if m.Account != "" {
		return m.Account
	}
	return m.PAN
}

// ResponseMTI returns the MTI of the reply to a request MTI ("0100" →
// "0110", "0221" → "0230"), or "" when mti is not a request we know.
func ResponseMTI(mti string) string {
	switch mti {
	case MTIAuthRequest:
		return MTIAuthResponse
	case MTIFinancialRequest:
		return MTIFinancialResponse
	case MTIAdvice, MTIAdviceRepeat:
		return MTIAdviceResponse
	case MTIReversal, MTIReversalRepeat:
		return MTIReversalResponse
	case MTINetworkRequest:
		return MTINetworkResponse
	}
	return ""
}

// Pack packs m with Spec (no length header).
func Pack(m *Message) ([]byte, error) {
	msg := iso8583.NewMessage(Spec)
	if err := msg.Marshal(m); err != nil {
		return nil, fmt.Errorf("marshaling %s: %w", m.MTI, err)
	}
	b, err := msg.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing %s: %w", m.MTI, err)
	}
	return b, nil
}

// Unpack unpacks one message (no length header). It rejects trailing bytes
// after the last field, which a lenient parser would silently ignore.
func Unpack(b []byte) (*Message, error) {
	msg := iso8583.NewMessage(Spec)
	if err := msg.Unpack(b); err != nil {
		return nil, fmt.Errorf("%w: unpacking: %w", ErrFrame, err)
	}
	var m Message
	if err := msg.Unmarshal(&m); err != nil {
		return nil, fmt.Errorf("%w: unmarshaling: %w", ErrFrame, err)
	}
	// Re-packing gives the length the fields account for; any difference is
	// bytes the unpacker did not read.
	again, err := msg.Pack()
	if err != nil {
		return nil, fmt.Errorf("%w: re-packing: %w", ErrFrame, err)
	}
	if len(again) != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the last field", ErrFrame, len(b)-len(again))
	}
	if len(m.MTI) != 4 || !isDigits(m.MTI) {
		return nil, fmt.Errorf("%w: bad MTI %q", ErrFrame, m.MTI)
	}
	return &m, nil
}

// WriteFrame writes payload preceded by its 2-byte big-endian length in a
// single Write, so frames from concurrent writers never interleave on a
// writer that serialises Write calls.
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) == 0 || len(payload) > MaxFrameBytes {
		return fmt.Errorf("%w: payload of %d bytes", ErrFrame, len(payload))
	}
	buf := make([]byte, 2+len(payload))
	binary.BigEndian.PutUint16(buf, uint16(len(payload)))
	copy(buf[2:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one length-prefixed frame and returns its payload. A frame
// of length 0 is a keep-alive some peers send: it returns an empty payload
// and no error, and the caller reads on. io.EOF is returned as is when the
// stream ends cleanly between frames.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated length header", ErrFrame)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > MaxFrameBytes {
		return nil, fmt.Errorf("%w: length %d over %d", ErrFrame, n, MaxFrameBytes)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated payload", ErrFrame)
		}
		return nil, err
	}
	return payload, nil
}

// ReadMessage reads frames until one holds a message (skipping keep-alives)
// and unpacks it.
func ReadMessage(r io.Reader) (*Message, []byte, error) {
	for {
		payload, err := ReadFrame(r)
		if err != nil {
			return nil, nil, err
		}
		if len(payload) == 0 {
			continue
		}
		m, err := Unpack(payload)
		return m, payload, err
	}
}

// Original is field 90, the original data elements of the message that an
// advice or reversal refers to.
type Original struct {
	MTI           string
	STAN          string
	TransmittedAt time.Time
	AcquirerID    string
}

// Field90 encodes o as n42: original MTI (4), STAN (6), field 7 (10),
// acquirer id (11, zero-padded left) and forwarding institution id (11
// zeros).
func (o Original) Field90() (string, error) {
	if len(o.MTI) != 4 || !isDigits(o.MTI) {
		return "", fmt.Errorf("original MTI %q: want 4 digits", o.MTI)
	}
	if len(o.STAN) != 6 || !isDigits(o.STAN) {
		return "", fmt.Errorf("original STAN %q: want 6 digits", o.STAN)
	}
	acq, err := padNumeric(o.AcquirerID, 11)
	if err != nil {
		return "", fmt.Errorf("original acquirer id: %w", err)
	}
	return o.MTI + o.STAN + TransmissionTime(o.TransmittedAt) + acq + strings.Repeat("0", 11), nil
}

// ParseOriginal decodes field 90. The year of the original transmission is
// not on the wire: it is taken as the latest year that puts the time no
// later than a day after now.
func ParseOriginal(s string, now time.Time) (Original, error) {
	if len(s) != 42 || !isDigits(s) {
		return Original{}, fmt.Errorf("field 90 %q: want 42 digits", s)
	}
	at, err := ParseTransmissionTime(s[10:20], now)
	if err != nil {
		return Original{}, fmt.Errorf("field 90: %w", err)
	}
	return Original{MTI: s[0:4], STAN: s[4:10], TransmittedAt: at, AcquirerID: strings.TrimLeft(s[20:31], "0")}, nil
}

// TransmissionTime formats field 7: UTC MMDDhhmmss.
func TransmissionTime(t time.Time) string { return t.UTC().Format(transmissionTimeLayout) }

// ParseTransmissionTime parses field 7 (UTC MMDDhhmmss), choosing the year
// that puts it closest to now: no later than a day after now.
func ParseTransmissionTime(s string, now time.Time) (time.Time, error) {
	if len(s) != 10 || !isDigits(s) {
		return time.Time{}, fmt.Errorf("transmission time %q: want MMDDhhmmss", s)
	}
	now = now.UTC()
	for _, year := range []int{now.Year() + 1, now.Year(), now.Year() - 1} {
		t, err := time.ParseInLocation("2006"+transmissionTimeLayout, strconv.Itoa(year)+s, time.UTC)
		if err != nil {
			// 0229 in a non-leap year, or an impossible date.
			continue
		}
		if !t.After(now.Add(24 * time.Hour)) {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("transmission time %q: not a date", s)
}

// padNumeric left-pads a digit string with zeros to exactly n characters.
func padNumeric(s string, n int) (string, error) {
	if !isDigits(s) || len(s) > n {
		return "", fmt.Errorf("%q: want up to %d digits", s, n)
	}
	return strings.Repeat("0", n-len(s)) + s, nil
}

// padText right-pads s with spaces to exactly n characters, after folding it
// to printable ASCII. It fails when s is longer than n.
func padText(s string, n int) (string, error) {
	s = ASCIIFold(s)
	if len(s) > n {
		return "", fmt.Errorf("%q: longer than %d characters", s, n)
	}
	return s + strings.Repeat(" ", n-len(s)), nil
}

// FormatAmount formats a non-negative amount in minor units as n12.
func FormatAmount(amount int64) (string, error) {
	if amount < 0 || amount > 999_999_999_999 {
		return "", fmt.Errorf("amount %d: out of n12 range", amount)
	}
	return fmt.Sprintf("%012d", amount), nil
}

// ParseAmount parses field 4 (exactly 12 digits).
func ParseAmount(s string) (int64, error) {
	if len(s) != 12 || !isDigits(s) {
		return 0, fmt.Errorf("amount %q: want 12 digits", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// vietFold maps Vietnamese letters with diacritics to their base letter, so
// post office names ("Bưu điện Lạng Sơn") fit an ASCII field readably.
var vietFold = func() map[rune]rune {
	groups := map[rune]string{
		'a': "àáảãạăằắẳẵặâầấẩẫậ", 'A': "ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ",
		'e': "èéẻẽẹêềếểễệ", 'E': "ÈÉẺẼẸÊỀẾỂỄỆ",
		'i': "ìíỉĩị", 'I': "ÌÍỈĨỊ",
		'o': "òóỏõọôồốổỗộơờớởỡợ", 'O': "ÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ",
		'u': "ùúủũụưừứửữự", 'U': "ÙÚỦŨỤƯỪỨỬỮỰ",
		'y': "ỳýỷỹỵ", 'Y': "ỲÝỶỸỴ",
		'd': "đ", 'D': "Đ",
	}
	m := map[rune]rune{}
	for base, vs := range groups {
		for _, v := range vs {
			m[v] = base
		}
	}
	return m
}()

// ASCIIFold returns s as printable ASCII: Vietnamese letters lose their
// diacritics, any other non-printable or non-ASCII rune becomes '?'.
func ASCIIFold(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case vietFold[r] != 0:
			b.WriteRune(vietFold[r])
		case r == utf8.RuneError:
			b.WriteByte('?')
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}
