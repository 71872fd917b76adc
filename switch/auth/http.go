package auth

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/softatm/softatm"
)

// SessionCookie is the name of the staff session cookie.
const SessionCookie = "softatm_session"

// HeaderCSRF carries the session's CSRF token on state-changing staff
// requests.
const HeaderCSRF = "X-CSRF-Token"

type ctxKey int

const (
	ctxBankClient ctxKey = iota
	ctxSession
	ctxHTTPS
)

// WithHTTPS marks ctx as a request the client sent over HTTPS to a TLS
// proxy in front of the switch (serve -public-url https://...): it reaches
// the switch over plain HTTP, so r.TLS is nil, yet its session cookie must
// be Secure so that the browser never sends it over plain HTTP.
func WithHTTPS(ctx context.Context) context.Context { return context.WithValue(ctx, ctxHTTPS, true) }

// overHTTPS reports a request that came over TLS, here or at the proxy.
func overHTTPS(r *http.Request) bool { return r.TLS != nil || r.Context().Value(ctxHTTPS) != nil }

// BankClientFrom returns the bank client RequireBankClient put in ctx.
func BankClientFrom(ctx context.Context) (BankClient, bool) {
	c, ok := ctx.Value(ctxBankClient).(BankClient)
	return c, ok
}

// SessionFrom returns the session RequireStaff put in ctx.
func SessionFrom(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(ctxSession).(Session)
	return s, ok
}

// WithBankClient returns ctx carrying c, as RequireBankClient does; for
// tests and for callers that authenticate another way.
func WithBankClient(ctx context.Context, c BankClient) context.Context {
	return context.WithValue(ctx, ctxBankClient, c)
}

// WithSession returns ctx carrying sess, as RequireStaff does.
func WithSession(ctx context.Context, sess Session) context.Context {
	return context.WithValue(ctx, ctxSession, sess)
}

// SetSessionCookie sends the session cookie for sess: HttpOnly (no script
// reads it), SameSite=Strict (no other site sends it), Secure when the
// request came over TLS (here or at a proxy: WithHTTPS), and expiring with
// the session.
func (s *Service) SetSessionCookie(w http.ResponseWriter, r *http.Request, sess Session) {
	maxAge := int(sess.ExpiresAt.Sub(s.now()) / time.Second)
	if maxAge <= 0 {
		maxAge = -1 // already expired: delete, not "session cookie"
	}
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    sess.Token,
		Path:     "/",
		Expires:  sess.ExpiresAt,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   overHTTPS(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// ClearSessionCookie tells the browser to drop the session cookie (after
// Logout).
func (s *Service) ClearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   overHTTPS(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// RequireBankClient authenticates a bank backend by HTTP Basic auth (client
// id and secret) and puts the BankClient in the request's context; anything
// else is 401, or 429 past a failure budget (see the package comment).
func (s *Service) RequireBankClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || !validClientID(id) || len(secret) > PasswordMaxLen {
			// Counted, not logged: a browser or a probe without
			// credentials is no guess at a secret.
			s.failures.WithLabelValues(kindClient, reasonMalformed).Inc()
			w.Header().Set("WWW-Authenticate", `Basic realm="softatm", charset="UTF-8"`)
			softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EUnauthorized, "client credentials required"))
			return
		}
		c, err := s.AuthenticateBankClient(r.Context(), id, secret, s.SourceAddr(r))
		if err != nil {
			if softatm.ErrorCode(err) == softatm.EUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="softatm", charset="UTF-8"`)
			}
			softatm.WriteError(w, r, s.log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithBankClient(r.Context(), c)))
	})
}

// RequireStaff authenticates a staff member by the session cookie and puts
// the Session in the request's context. A state-changing request (anything
// but GET, HEAD, OPTIONS) must also carry the session's CSRF token in
// X-CSRF-Token, else 403. With roles given, the user's role must be one of
// them, else 403; with none, any staff role passes. No session is 401.
func (s *Service) RequireStaff(roles ...Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := r.Cookie(SessionCookie)
			if err != nil {
				softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EUnauthorized, "not logged in"))
				return
			}
			sess, err := s.SessionByToken(r.Context(), c.Value)
			if err != nil {
				softatm.WriteError(w, r, s.log, err)
				return
			}
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
			default:
				got := r.Header.Get(HeaderCSRF)
				if got == "" || !constantTimeEqual(got, sess.CSRF) {
					softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EForbidden, "missing or wrong CSRF token"))
					return
				}
			}
			if len(roles) > 0 && !slices.Contains(roles, sess.User.Role) {
				softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EForbidden, "your role may not do this"))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithSession(r.Context(), sess)))
		})
	}
}

// BankClientScope is an idempotency scope function (for idem.Middleware,
// after RequireBankClient): keys belong to the calling bank client. The
// prefix keeps a client id from ever equalling a staff scope.
func BankClientScope(r *http.Request) (string, bool) {
	c, ok := BankClientFrom(r.Context())
	if !ok {
		return "", false
	}
	return "client:" + c.ID, true
}

// StaffScope is an idempotency scope function (for idem.Middleware, after
// RequireStaff): keys belong to the logged-in user, whatever session or
// kiosk they use.
func StaffScope(r *http.Request) (string, bool) {
	s, ok := SessionFrom(r.Context())
	if !ok {
		return "", false
	}
	return "user:" + s.User.ID.String(), true
}
