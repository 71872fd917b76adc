package code

import (
	"bytes"
	"context"
	"crypto/rand"
	"image/png"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/softatm/softatm"
)

// TestPNGRoundTrip renders a real code and reads it back with an
// independent decoder, then verifies what it read.
func TestPNGRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(t0)
	store := NewMemKeyStore()
	if _, err := Rotate(ctx, store, "KEY12345", t0); err != nil {
		t.Fatal(err)
	}
	kr := NewKeyring(store, WithClock(clk.now))
	p := samplePayload(t0.Add(time.Hour))
	p.Bank = "ABCDEFGH" // longest code: a deposit code (version 2, one byte more)
	p.Kind = KindDeposit
	s, err := kr.Sign(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != MaxTextLen {
		t.Fatalf("longest code is %d characters, MaxTextLen %d", len(s), MaxTextLen)
	}
	b, err := PNG(s, DefaultQRSize)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, pureBarcode)
	if err != nil {
		t.Fatalf("decoding the QR: %v", err)
	}
	if res.GetText() != s {
		t.Fatalf("QR says %q, want %q", res.GetText(), s)
	}
	if _, err := kr.Verify(ctx, res.GetText()); err != nil {
		t.Fatal(err)
	}
	// Alphanumeric mode keeps the longest code (188 characters) at QR
	// version 8 (49x49 modules) at level M; byte mode would need version 10.
	q, err := qrcode.New(s, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	if q.VersionNumber > 8 {
		t.Errorf("QR version %d, want <= 8 (alphanumeric mode)", q.VersionNumber)
	}
}

// pureBarcode tells gozxing the image is a generated symbol, not a photo:
// it reads the modules straight off the grid.
var pureBarcode = map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}

// TestPNGDecodesEveryCode renders many random longest-length codes and
// decodes each: with whole pixels per module every one reads back. (Scaled
// by a fraction, about 1 in 100 did not.)
func TestPNGDecodesEveryCode(t *testing.T) {
	t.Parallel()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := range 200 {
		b := make([]byte, MaxTextLen)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		for j := range b {
			b[j] = alphabet[int(b[j])%len(alphabet)]
		}
		p, err := PNG(string(b), DefaultQRSize)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		if w := img.Bounds().Dx(); w > DefaultQRSize || w < DefaultQRSize*3/4 {
			t.Fatalf("image %d px wide, want at most %d and not much less", w, DefaultQRSize)
		}
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		res, err := zxqr.NewQRCodeReader().Decode(bmp, pureBarcode)
		if err != nil || res.GetText() != string(b) {
			t.Fatalf("code %d (%s) does not decode: %v", i, b, err)
		}
	}
}

func TestPNGRefuses(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		s    string
		size int
	}{
		"empty":   {"", 320},
		"url":     {"https://evil.example/", 320},
		"lower":   {"abc", 320},
		"size 0":  {"ABC", 0},
		"too big": {"ABC", 1 << 20},
	} {
		if _, err := PNG(tt.s, tt.size); softatm.ErrorCode(err) != softatm.EInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}
