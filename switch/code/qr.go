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

// PNG renders a code's text as a QR code PNG of at most size×size pixels
// (whole pixels per module; one per module if size is smaller than the
// symbol), with medium error correction (about 15% of the symbol may be
// damaged). The text must be a code (upper-case base32), so that go-qrcode
// picks alphanumeric mode and the symbol stays small.
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
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("rendering QR: %w", err)
	}
	// Whole pixels per module (quiet zone included), as many as fit in
	// size: a symbol scaled by a fraction has modules of uneven width,
	// which decoders misread now and then (about 1 in 100 codes with
	// gozxing at 320 px).
	ppm := max(1, size/len(q.Bitmap()))
	png, err := q.PNG(-ppm)
	if err != nil {
		return nil, fmt.Errorf("rendering QR: %w", err)
	}
	return png, nil
}
