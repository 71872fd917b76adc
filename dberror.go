package softatm

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// databaseUnavailableMessage is what a caller is told while no PostgreSQL
// primary is reachable.
const databaseUnavailableMessage = "the switch's database is failing over; nothing was changed or refused: try again shortly"

// retryAfterS is the Retry-After (seconds) each "try again" code carries.
// A failover measured 7–11 s on a loaded machine, and a caller with an
// idempotency key may simply repeat: 2 s spreads the retries over it
// without leaving a teller waiting long after the primary is back.
var retryAfterS = map[string]int{
	EDatabaseUnavailable: 2,
	EUnavailable:         1,
}

// unavailableStates are SQLSTATEs a server answers when it cannot take
// writes now, which a failover produces: the connection classes (08),
// shutdown and start-up (57P01 admin_shutdown, 57P02 crash_shutdown,
// 57P03 cannot_connect_now), and a read-only transaction (25006: the
// connection reached a node that is, or just became, a standby).
var unavailableStates = []string{"08", "57P01", "57P02", "57P03", "25006"}

// DatabaseUnavailable reports whether err says that the database could not
// be reached or lost its primary, rather than answering: a network error, a
// connection closed or refused, a FATAL error, or one of
// unavailableStates. Such a request may be repeated; it is never a refusal.
// A caller's own cancellation or deadline is not one.
func DatabaseUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Severity == "FATAL" {
			return true
		}
		for _, s := range unavailableStates {
			if strings.HasPrefix(pgErr.Code, s) {
				return true
			}
		}
		return false
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed")
}
