//go:build tools

// This file pins, in go.mod, the modules the project uses before every
// package that imports them has landed. It is never built.
package bench

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/cockroachdb/cockroach-go/v2/crdb"
	_ "github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/makiuchi-d/gozxing"
	_ "github.com/makiuchi-d/gozxing/qrcode"
	_ "github.com/moov-io/iso8583"
	_ "github.com/moov-io/iso8583-connection"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/skip2/go-qrcode"
	_ "golang.org/x/crypto/bcrypt"
)
