// Package iso owns the ISO 8583 bank link of softatm: the wire profile
// (ISO 8583:1987 ASCII with a 2-byte big-endian length header), the typed
// messages that travel on it, the framing helpers, and the Client that holds
// one signed-on connection to the partner bank, finds the reply to each
// request by MTI + STAN + terminal id and accepts it only when CheckReply
// finds every identifying field (3, 4, 11, 37, 41, 49, 2/102, 70) equal to
// the request's.
//
// Decisions written down here because DESIGN.md is silent on them:
//
//   - The spec is our own, built from moov-io's Spec87ASCII field table but
//     with an 8-byte (16 hex character) primary bitmap, so a secondary bitmap
//     is only sent when a field above 64 is present, as the 1987 standard
//     says. Every field is declared with its exact 1987 length and no
//     padding: the typed layer (Message) pads, so what is unpacked is exactly
//     what was on the wire (field 3 keeps its leading 0, field 4 keeps its
//     zeros).
//   - The client uses moov-io/iso8583-connection for the transport (dial,
//     serialised writes, the idle timer that drives echo tests, close hooks)
//     but not for reply matching: in v0.9.0 Connection.Send takes no context,
//     a second (duplicate) reply blocks a goroutine forever on an unbuffered
//     channel instead of reaching InboundMessageHandler, and a connection
//     failure while a timed-out Send waits for the pending-map mutex can
//     deadlock. Our MessageReader hands every inbound frame to the Client,
//     which matches it against its own pending map with buffered channels.
//   - Local time and date (fields 12, 13) and the settlement date (15) are in
//     Vietnam time, which has had no daylight saving since 1975, so a fixed
//     UTC+7 zone is exact and needs no tz database on the machine.
//
// Account numbers are never logged in clear: use Mask.
//
// This package must not import any other package of this module, not even
// the root error vocabulary: it speaks ISO 8583 only, and the switch turns
// its errors and response codes into the switch's (imports_test.go checks
// it). The switch imports it, never the other way round.
package iso

import (
	"strings"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// Response codes (field 39) used on the link.
const (
	RCApproved           = "00"
	RCDoNotHonour        = "05"
	RCInvalidTransaction = "12"
	RCInvalidAmount      = "13"
	RCInvalidAccount     = "14"
	RCFormatError        = "30"
	RCInsufficientFunds  = "51"
	RCExceedsLimit       = "61"
	RCIssuerUnavailable  = "91"
	RCDuplicate          = "94"
	RCSystemError        = "96"
)

// ProcessingCashWithdrawal is field 3 for a cash withdrawal from the default
// account: transaction type 01, from account 00, to account 00.
const ProcessingCashWithdrawal = "010000"

// Message type indicators used on the link.
const (
	MTIAuthRequest         = "0100"
	MTIAuthResponse        = "0110"
	MTIAdvice              = "0220"
	MTIAdviceRepeat        = "0221"
	MTIAdviceResponse      = "0230"
	MTIReversal            = "0420"
	MTIReversalRepeat      = "0421"
	MTIReversalResponse    = "0430"
	MTINetworkRequest      = "0800"
	MTINetworkResponse     = "0810"
	NetworkSignOn          = "001"
	NetworkSignOff         = "002"
	NetworkEcho            = "301"
	CurrencyVND            = "704"
	DefaultAcquirerID      = "970400"
	transmissionTimeLayout = "0102150405" // MMDDhhmmss, field 7 and inside field 90
)

// LocalZone is Vietnam time (UTC+7, no daylight saving), used for fields 12,
// 13 and 15 and for the simulator's calendar days.
var LocalZone = time.FixedZone("ICT", 7*60*60)

// Spec is the wire profile: ISO 8583:1987 ASCII with the fields listed in
// DESIGN.md. It starts from moov-io's 1987 ASCII field table and replaces
// what does not match the 1987 standard or our profile. The table is taken
// from the root package's copy (iso8583.Spec87, the same field definitions
// as specs.Spec87ASCII) because importing the specs package pulls in a YAML
// parser the switch has no use for.
var Spec = buildSpec()

func buildSpec() *iso8583.MessageSpec {
	fields := make(map[int]field.Field, len(iso8583.Spec87.Fields)+4)
	for id, f := range iso8583.Spec87.Fields {
		fields[id] = f
	}
	str := func(length int, desc string, pref prefix.Prefixer) field.Field {
		return field.NewString(&field.Spec{Length: length, Description: desc, Enc: encoding.ASCII, Pref: pref})
	}
	// An 8-byte bitmap: moov sets bit 1 and appends the secondary bitmap
	// only when a field above 64 is present. Spec87ASCII's 16-byte bitmap
	// always sends 32 hex characters with bit 1 clear, which no 1987 peer
	// reads correctly.
	fields[1] = field.NewBitmap(&field.Spec{Length: 8, Description: "Bitmap", Enc: encoding.BytesToASCIIHex, Pref: prefix.Hex.Fixed})
	// Fixed fields are declared without padding; Message pads them, so an
	// unpacked field is byte-for-byte what the peer sent.
	fields[3] = str(6, "Processing Code", prefix.ASCII.Fixed)
	fields[4] = str(12, "Transaction Amount", prefix.ASCII.Fixed)
	fields[32] = str(11, "Acquiring Institution Identification Code", prefix.ASCII.LL)
	fields[70] = str(3, "Network Management Information Code", prefix.ASCII.Fixed)
	fields[90] = str(42, "Original Data Elements", prefix.ASCII.Fixed)
	fields[102] = str(28, "Account Identification 1", prefix.ASCII.LL)
	return &iso8583.MessageSpec{Name: "softatm ISO 8583:1987 ASCII", Fields: fields}
}

// Mask returns an account number safe to log: every character but the last
// four replaced by '*'. Short values are masked entirely.
func Mask(account string) string {
	if len(account) <= 4 {
		return strings.Repeat("*", len(account))
	}
	return strings.Repeat("*", len(account)-4) + account[len(account)-4:]
}
