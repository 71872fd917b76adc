// Package auth owns who may call the switch: the credentials of bank clients
// (a bank's backend calling the API with HTTP Basic auth), staff users
// (tellers, finance, admins) with their passwords and roles, staff sessions
// (cookie plus CSRF token) and the cap on password guessing. Its tables are
// in migration 00022.
//
// Decisions where DESIGN.md is silent:
//   - Nothing secret is stored in clear. Client secrets and passwords are
//     bcrypt hashes; a session row's id is the SHA-256 of its token, so a
//     copy of the database (a backup, a replica) lets nobody log in.
//   - Login says the same thing for an unknown user, a wrong password and a
//     disabled user, and spends the same bcrypt time on each, so it reveals
//     nothing about which user names exist.
//   - Guessing is capped per user name (default 5 failures in 15 minutes,
//     then ELocked even for the right password). Every attempt is recorded as
//     a failure BEFORE the password is checked, in a SERIALIZABLE
//     transaction that also counts the window, and is removed when the
//     password is right; so parallel guesses cannot slip past the cap.
//     Unknown names are counted too. A successful login clears the count.
//   - A teller's session is bound to the teller's kiosk (Session.Kiosk).
//   - Sessions last a fixed time (default 8 h, one shift) and do not slide.
//   - Successful bank-client checks are cached in memory for a short TTL
//     (default 60 s), keyed by SHA-256 of id and secret: bcrypt on every API
//     call would dominate latency. So disabling a client or changing its
//     secret takes up to that TTL to reach every switch instance.
//   - The CSRF defence for staff pages is two-fold: the session cookie is
//     SameSite=Strict, and every state-changing request must echo the
//     session's CSRF token in X-CSRF-Token.
//
// This package must not import any other softatm package except the root
// softatm package (for the error codes) and ledger (for its transaction
// retry loop).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// Role is what a staff user may do.
type Role string

// The staff roles.
const (
	RoleTeller  Role = "teller"  // pays out at one kiosk of one post office
	RoleFinance Role = "finance" // closes business days, reconciles
	RoleAdmin   Role = "admin"   // manages users, banks, post offices and kiosks
)

func (r Role) valid() bool {
	return r == RoleTeller || r == RoleFinance || r == RoleAdmin
}

// Settings and their defaults.
const (
	DefaultSessionTTL         = 8 * time.Hour
	DefaultBcryptCost         = bcrypt.DefaultCost
	DefaultMaxLoginFailures   = 5
	DefaultLoginFailureWindow = 15 * time.Minute
	// DefaultClientCacheTTL is how long a successful bank-client check is
	// trusted without bcrypt; it is also how long a disabled client may
	// still be let in.
	DefaultClientCacheTTL = 60 * time.Second
	// DefaultClientCacheMax bounds the client-check cache; it is emptied
	// when full (there are about 40 banks, so it only fills under attack
	// with many valid secrets, which cannot happen).
	DefaultClientCacheMax = 1024
	DefaultTxRetryMax     = 10

	PasswordMinLen = 8
	// PasswordMaxLen is bcrypt's limit: it ignores (x/crypto refuses)
	// anything past 72 bytes.
	PasswordMaxLen     = 72
	ClientSecretMinLen = 16
	usernameMaxLen     = 64
	clientIDMaxLen     = 64
	tokenBytes         = 32
)

// BankClient is an authenticated bank backend.
type BankClient struct {
	ID       string
	BankCode string
}

// User is a staff member.
type User struct {
	ID         uuid.UUID
	Username   string
	Role       Role
	PostOffice string // "" unless set; always set for a teller
	Kiosk      string // "" unless set; always set for a teller
}

// Session is a logged-in staff member.
type Session struct {
	Token     string // only returned by Login; the database keeps its hash only
	CSRF      string
	User      User
	Kiosk     string
	ExpiresAt time.Time
}

// Service checks credentials and keeps sessions.
type Service struct {
	pool          *pgxpool.Pool
	sessionTTL    time.Duration
	bcryptCost    int
	maxFailures   int
	failureWindow time.Duration
	cacheTTL      time.Duration
	cacheMax      int
	txRetryMax    int
	now           func() time.Time
	log           *slog.Logger

	dummyOnce sync.Once
	dummyHash []byte

	cacheMu sync.Mutex
	cache   map[[sha256.Size]byte]cachedClient
}

type cachedClient struct {
	client BankClient
	until  time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithSessionTTL sets how long a session lasts (default DefaultSessionTTL).
func WithSessionTTL(d time.Duration) Option { return func(s *Service) { s.sessionTTL = d } }

// WithBcryptCost sets the bcrypt cost for new hashes (default
// DefaultBcryptCost); tests use bcrypt.MinCost.
func WithBcryptCost(n int) Option { return func(s *Service) { s.bcryptCost = n } }

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithMaxLoginFailures sets how many failed logins per user name the window
// allows before ELocked (default DefaultMaxLoginFailures).
func WithMaxLoginFailures(n int) Option { return func(s *Service) { s.maxFailures = n } }

// WithLoginFailureWindow sets the window failures are counted over (default
// DefaultLoginFailureWindow).
func WithLoginFailureWindow(d time.Duration) Option {
	return func(s *Service) { s.failureWindow = d }
}

// WithClientCacheTTL sets how long a successful bank-client check is cached
// (default DefaultClientCacheTTL; 0 disables the cache).
func WithClientCacheTTL(d time.Duration) Option { return func(s *Service) { s.cacheTTL = d } }

// WithTxRetryMax bounds transaction retries (default DefaultTxRetryMax).
func WithTxRetryMax(n int) Option { return func(s *Service) { s.txRetryMax = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// New returns a Service on the given pool.
func New(pool *pgxpool.Pool, opts ...Option) *Service {
	s := &Service{
		pool:          pool,
		sessionTTL:    DefaultSessionTTL,
		bcryptCost:    DefaultBcryptCost,
		maxFailures:   DefaultMaxLoginFailures,
		failureWindow: DefaultLoginFailureWindow,
		cacheTTL:      DefaultClientCacheTTL,
		cacheMax:      DefaultClientCacheMax,
		txRetryMax:    DefaultTxRetryMax,
		now:           time.Now,
		log:           slog.Default(),
		cache:         make(map[[sha256.Size]byte]cachedClient),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

var (
	errBadClient = softatm.Errorf(softatm.EUnauthorized, "invalid client credentials")
	errBadLogin  = softatm.Errorf(softatm.EUnauthorized, "invalid user name or password")
	errNoSession = softatm.Errorf(softatm.EUnauthorized, "not logged in or session expired")
)

func internal(msg string, err error) error {
	return softatm.Wrap(softatm.EInternal, "internal error", fmt.Errorf("%s: %w", msg, err))
}

// dummy returns a bcrypt hash to compare against when the user or client is
// unknown, so that the answer takes as long as for a known one.
func (s *Service) dummy() []byte {
	s.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte("softatm-timing-equaliser"), s.bcryptCost)
		if err != nil {
			panic(fmt.Sprintf("bcrypt of a constant failed: %v", err))
		}
		s.dummyHash = h
	})
	return s.dummyHash
}

func (s *Service) hash(secret string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(secret), s.bcryptCost)
	if err != nil {
		return "", internal("bcrypt", err)
	}
	return string(h), nil
}

// validClientID allows what an HTTP Basic user name can carry unambiguously
// (no ':') and what is safe to log.
func validClientID(id string) bool {
	if len(id) < 1 || len(id) > clientIDMaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// normalizeUsername lower-cases and trims a user name; tellers type it on a
// kiosk, so case must not matter.
func normalizeUsername(u string) string { return strings.ToLower(strings.TrimSpace(u)) }

func validUsername(u string) bool {
	if len(u) < 3 || len(u) > usernameMaxLen {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// CreateBankClient records a bank backend's credentials. The id may not
// contain ':' (HTTP Basic splits on it); the secret must be at least
// ClientSecretMinLen characters.
func (s *Service) CreateBankClient(ctx context.Context, id, bankCode, secret string) error {
	if !validClientID(id) {
		return softatm.Errorf(softatm.EInvalid, "client id must be 1 to %d characters from A-Z a-z 0-9 _ . -", clientIDMaxLen)
	}
	if len(secret) < ClientSecretMinLen || len(secret) > PasswordMaxLen {
		return softatm.Errorf(softatm.EInvalid, "client secret must be %d to %d bytes", ClientSecretMinLen, PasswordMaxLen)
	}
	h, err := s.hash(secret)
	if err != nil {
		return err
	}
	err = s.runTx(ctx, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM banks WHERE code = $1)`, bankCode).Scan(&ok); err != nil {
			return internal("checking bank", err)
		}
		if !ok {
			return softatm.Errorf(softatm.EInvalid, "unknown bank %q", bankCode)
		}
		_, err := tx.Exec(ctx, `INSERT INTO bank_clients (id, bank_code, secret_hash, created_at) VALUES ($1, $2, $3, $4)`,
			id, bankCode, h, s.now())
		if isUnique(err) {
			return softatm.Errorf(softatm.EConflict, "client %q already exists", id)
		}
		return err
	})
	return asDomain("creating bank client", err)
}

// AuthenticateBankClient checks a bank client's id and secret. Every refusal
// (unknown, disabled, wrong secret) is the same EUnauthorized.
func (s *Service) AuthenticateBankClient(ctx context.Context, id, secret string) (BankClient, error) {
	var (
		c        = BankClient{ID: id}
		hash     string
		disabled bool
	)
	err := s.pool.QueryRow(ctx, `SELECT bank_code, secret_hash, disabled FROM bank_clients WHERE id = $1`, id).
		Scan(&c.BankCode, &hash, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(s.dummy(), []byte(secret))
		return BankClient{}, errBadClient
	}
	if err != nil {
		return BankClient{}, internal("loading bank client", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) != nil || disabled {
		return BankClient{}, errBadClient
	}
	return c, nil
}

// authenticateBankClientCached is AuthenticateBankClient with successes
// cached for cacheTTL.
func (s *Service) authenticateBankClientCached(ctx context.Context, id, secret string) (BankClient, error) {
	if s.cacheTTL <= 0 {
		return s.AuthenticateBankClient(ctx, id, secret)
	}
	// id never contains ':', so id ":" secret is unambiguous.
	k := sha256.Sum256([]byte(id + ":" + secret))
	now := s.now()
	s.cacheMu.Lock()
	e, ok := s.cache[k]
	s.cacheMu.Unlock()
	if ok && now.Before(e.until) {
		return e.client, nil
	}
	c, err := s.AuthenticateBankClient(ctx, id, secret)
	if err != nil {
		return c, err
	}
	s.cacheMu.Lock()
	if len(s.cache) >= s.cacheMax {
		for key, v := range s.cache {
			if !now.Before(v.until) {
				delete(s.cache, key)
			}
		}
		if len(s.cache) >= s.cacheMax {
			clear(s.cache)
		}
	}
	s.cache[k] = cachedClient{client: c, until: now.Add(s.cacheTTL)}
	s.cacheMu.Unlock()
	return c, nil
}

// CreateUser records a staff user. A teller must have a post office and a
// kiosk of that post office; the password must be PasswordMinLen to
// PasswordMaxLen bytes.
func (s *Service) CreateUser(ctx context.Context, username, password string, role Role, postOffice, kiosk string) (User, error) {
	u := User{ID: uuid.New(), Username: normalizeUsername(username), Role: role, PostOffice: postOffice, Kiosk: kiosk}
	switch {
	case !validUsername(u.Username):
		return User{}, softatm.Errorf(softatm.EInvalid, "user name must be 3 to %d characters from a-z 0-9 _ . -", usernameMaxLen)
	case !role.valid():
		return User{}, softatm.Errorf(softatm.EInvalid, "unknown role %q", role)
	case len(password) < PasswordMinLen || len(password) > PasswordMaxLen:
		return User{}, softatm.Errorf(softatm.EInvalid, "password must be %d to %d bytes", PasswordMinLen, PasswordMaxLen)
	case role == RoleTeller && (postOffice == "" || kiosk == ""):
		return User{}, softatm.Errorf(softatm.EInvalid, "a teller needs a post office and a kiosk")
	case kiosk != "" && postOffice == "":
		return User{}, softatm.Errorf(softatm.EInvalid, "a kiosk needs its post office")
	}
	h, err := s.hash(password)
	if err != nil {
		return User{}, err
	}
	err = s.runTx(ctx, func(tx pgx.Tx) error {
		if postOffice != "" {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM post_offices WHERE code = $1)`, postOffice).Scan(&ok); err != nil {
				return internal("checking post office", err)
			}
			if !ok {
				return softatm.Errorf(softatm.EInvalid, "unknown post office %q", postOffice)
			}
		}
		if kiosk != "" {
			var po string
			err := tx.QueryRow(ctx, `SELECT post_office FROM kiosks WHERE id = $1`, kiosk).Scan(&po)
			if errors.Is(err, pgx.ErrNoRows) {
				return softatm.Errorf(softatm.EInvalid, "unknown kiosk %q", kiosk)
			}
			if err != nil {
				return internal("checking kiosk", err)
			}
			if po != postOffice {
				return softatm.Errorf(softatm.EInvalid, "kiosk %q is not at post office %q", kiosk, postOffice)
			}
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO users (id, username, password_hash, role, post_office, kiosk, created_at)
			VALUES ($1, $2, $3, $4, NULLIF($5, ''), NULLIF($6, ''), $7)`,
			u.ID, u.Username, h, string(role), postOffice, kiosk, s.now())
		if isUnique(err) {
			return softatm.Errorf(softatm.EConflict, "user %q already exists", u.Username)
		}
		return err
	})
	if err != nil {
		return User{}, asDomain("creating user", err)
	}
	return u, nil
}

// SetUserDisabled disables or re-enables a staff user; disabling also ends
// the user's sessions at once.
func (s *Service) SetUserDisabled(ctx context.Context, username string, disabled bool) error {
	return asDomain("database", s.runTx(ctx, func(tx pgx.Tx) error {
		var id uuid.UUID
		err := tx.QueryRow(ctx, `UPDATE users SET disabled = $2 WHERE username = $1 RETURNING id`,
			normalizeUsername(username), disabled).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return softatm.Errorf(softatm.ENotFound, "no user %q", username)
		}
		if err != nil || !disabled {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id)
		return err
	}))
}

// SetBankClientDisabled disables or re-enables a bank client. A running
// switch may keep letting a disabled client in for up to the client cache
// TTL.
func (s *Service) SetBankClientDisabled(ctx context.Context, id string, disabled bool) error {
	return asDomain("database", s.runTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE bank_clients SET disabled = $2 WHERE id = $1`, id, disabled)
		if err == nil && tag.RowsAffected() == 0 {
			return softatm.Errorf(softatm.ENotFound, "no bank client %q", id)
		}
		return err
	}))
}

// Login checks a staff user's password and opens a session. Unknown user,
// wrong password and disabled user are the same EUnauthorized; after too many
// failures in the window the user name is ELocked, whatever the password.
func (s *Service) Login(ctx context.Context, username, password string) (Session, error) {
	name := normalizeUsername(username)
	if len(name) > usernameMaxLen {
		// Not a user name we could have; keep junk out of login_failures.
		name = name[:usernameMaxLen]
	}
	attempt := uuid.New()
	now := s.now()

	// Record the attempt as a failure before checking the password (see
	// the package comment); a right password removes it below.
	var locked bool
	err := s.runTx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM login_failures WHERE username = $1 AND failed_at > $2`,
			name, now.Add(-s.failureWindow)).Scan(&n); err != nil {
			return err
		}
		locked = n >= s.maxFailures
		if locked {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO login_failures (id, username, failed_at) VALUES ($1, $2, $3)`, attempt, name, now)
		return err
	})
	if err != nil {
		return Session{}, internal("recording login attempt", err)
	}
	if locked {
		return Session{}, softatm.Errorf(softatm.ELocked, "too many failed logins; try again later")
	}

	var (
		u        User
		hash     string
		disabled bool
		po, k    *string
		role     string
	)
	err = s.pool.QueryRow(ctx, `SELECT id, username, password_hash, role, post_office, kiosk, disabled FROM users WHERE username = $1`, name).
		Scan(&u.ID, &u.Username, &hash, &role, &po, &k, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(s.dummy(), []byte(password))
		return Session{}, errBadLogin
	}
	if err != nil {
		return Session{}, internal("loading user", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || disabled {
		return Session{}, errBadLogin
	}
	u.Role = Role(role)
	u.PostOffice = deref(po)
	u.Kiosk = deref(k)

	token, err := randomToken()
	if err != nil {
		return Session{}, internal("session token", err)
	}
	csrf, err := randomToken()
	if err != nil {
		return Session{}, internal("csrf token", err)
	}
	sess := Session{Token: token, CSRF: csrf, User: u, Kiosk: u.Kiosk, ExpiresAt: now.Add(s.sessionTTL)}
	err = s.runTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM login_failures WHERE username = $1`, name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO sessions (id, user_id, csrf_token, kiosk, expires_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			sessionID(token), u.ID, csrf, sess.Kiosk, sess.ExpiresAt, now)
		return err
	})
	if err != nil {
		return Session{}, internal("creating session", err)
	}
	return sess, nil
}

// SessionByToken returns the live session of token; an unknown or expired
// token, or a disabled user, is EUnauthorized. The returned Session has no
// Token: the caller already holds it.
func (s *Service) SessionByToken(ctx context.Context, token string) (Session, error) {
	if token == "" || len(token) > 128 {
		return Session{}, errNoSession
	}
	var (
		sess  Session
		role  string
		po, k *string
	)
	err := s.pool.QueryRow(ctx, `
		SELECT s.csrf_token, s.kiosk, s.expires_at, u.id, u.username, u.role, u.post_office, u.kiosk
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = $1 AND s.expires_at > $2 AND NOT u.disabled`,
		sessionID(token), s.now()).
		Scan(&sess.CSRF, &sess.Kiosk, &sess.ExpiresAt, &sess.User.ID, &sess.User.Username, &role, &po, &k)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, errNoSession
	}
	if err != nil {
		return Session{}, internal("loading session", err)
	}
	sess.User.Role = Role(role)
	sess.User.PostOffice = deref(po)
	sess.User.Kiosk = deref(k)
	return sess, nil
}

// Logout ends the session of token. Ending an unknown session is not an
// error: the result (no session) is the same.
func (s *Service) Logout(ctx context.Context, token string) error {
	return asDomain("database", s.runTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, sessionID(token))
		return err
	}))
}

// Purge deletes expired sessions and login failures older than the window;
// the operator runs it periodically so those tables stay small.
func (s *Service) Purge(ctx context.Context) (int64, error) {
	var n int64
	now := s.now()
	err := s.runTx(ctx, func(tx pgx.Tx) error {
		a, err := tx.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, now)
		if err != nil {
			return err
		}
		b, err := tx.Exec(ctx, `DELETE FROM login_failures WHERE failed_at <= $1`, now.Add(-s.failureWindow))
		n = a.RowsAffected() + b.RowsAffected()
		return err
	})
	return n, asDomain("purging", err)
}

// sessionID is the database key of a session token: its SHA-256, so the
// token itself is never stored.
func sessionID(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func randomToken() (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// asDomain passes domain errors through and hides anything else behind
// EInternal, so that no database text reaches a caller.
func asDomain(msg string, err error) error {
	var e *softatm.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return internal(msg, err)
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// runTx runs fn through the one serializable retry loop of the switch.
func (s *Service) runTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return ledger.RunTx(ctx, s.pool, s.txRetryMax, fn)
}
