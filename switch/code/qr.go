package code

import (
	"fmt"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/softatm/softatm"
)

// QR rendering settings.
const (
	// DefaultQRSize is a PNG side in pixels that phone screens show whole
	// and kiosk cameras read at arm's length.
	DefaultQRSize = 320
	// qrSizeMax bounds the PNG a caller can ask for (memory: size² bytes).
	qrSizeMax = 2048
)

// PNG renders a code's text as a QR code PNG of size×size pixels, with
// medium error correction (about 15% of the symbol may be damaged). The
// text must be a code (upper-case base32), so that go-qrcode picks
// alphanumeric mode and the symbol stays small.
func PNG(payload string, size int) ([]byte, error) {
	if payload == "" || len(payload) > MaxTextLen {
		return nil, softatm.Errorf(softatm.EInvalid, "not a withdrawal code")
	}
	for i := 0; i < len(payload); i++ {
		if c := payload[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return nil, softatm.Errorf(softatm.EInvalid, "not a withdrawal code")
		}
	}
	if size <= 0 || size > qrSizeMax {
		return nil, softatm.Errorf(softatm.EInvalid, "QR size %d outside 1..%d", size, qrSizeMax)
	}
	png, err := qrcode.Encode(payload, qrcode.Medium, size)
	if err != nil {
		return nil, fmt.Errorf("rendering QR: %w", err)
	}
	return png, nil
}
