// Package auth owns who may call the switch: the credentials of bank clients
// (a bank's backend calling the API with HTTP Basic auth), staff users
// (tellers, finance, admins) with their passwords and roles, staff sessions
// (cookie plus CSRF token) and the caps on guessing. Its tables are in
// migrations 00022 and 00025.
//
// Decisions where DESIGN.md is silent:
//   - Nothing secret is stored in clear. A session row's id is the SHA-256
//     of its token, so a copy of the database (a backup, a replica) lets
//     nobody log in.
//   - Staff passwords are chosen by people (low entropy), so they are bcrypt
//     hashes: slow on purpose. Bank-client secrets are random keys of at
//     least ClientSecretMinLen characters, so a slow hash buys nothing and
//     costs every API call: they are stored as HMAC-SHA-256 of the client id
//     and secret, keyed with a key derived from the server's -secret
//     (WithClientSecretKey; the derivation is domain-separated from the
//     secret's other uses), and compared in constant time. A copy of the
//     database without the server secret cannot test guesses offline.
//   - Rows from before that (bcrypt) are upgraded on their next successful
//     use, in place, so that an upgrade needs no new secrets from the banks.
//     Until then a wrong secret for such a row costs a bcrypt comparison,
//     which runs under the same bounded slots as logins and stops once the
//     client id is over its failure budget.
//   - Login says the same thing for an unknown user, a wrong password and a
//     disabled user, and spends the same bcrypt time on each, so it reveals
//     nothing about which user names exist. (The log line and the metric
//     say which it was: they are for the operator.)
//   - Guessing passwords is slowed per (user name, source address): after
//     LoginFreeFailures failures in the window (default 5 in 24 h), the next
//     attempt from that address for that user must wait a delay that starts
//     at LoginDelayBase (1 s) and doubles with each further failure up to
//     LoginDelayMax (15 min); an attempt inside the delay is ELocked without
//     checking the password. It is not a lock on the user: failures from one
//     address do not slow the user at another address, so nobody can lock a
//     teller out from elsewhere. Every attempt is recorded as a failure
//     BEFORE the password is checked, in a SERIALIZABLE transaction that also
//     counts the window, and is removed when the password is right; so
//     parallel guesses cannot slip past the count. A success clears that
//     address's failures for that user only.
//   - bcrypt work is bounded: one comparison at a time per source address,
//     BcryptConcurrency at once in the process, each waiting at most
//     BcryptWaitMax (then EUnavailable). A flood of wrong passwords from one
//     address queues behind itself and cannot take the cores that other
//     addresses' logins need.
//   - Bank-client failures are counted per source address and per client id
//     in memory, per switch instance (they protect this instance's work and
//     logs; a random secret cannot be guessed, so they need not be global).
//     Past ClientFailuresPerAddr failures in ClientFailureWindow an address
//     is refused with ERateLimited, unchecked, until its window ends. Past
//     ClientFailuresPerID a client id's further WRONG secrets are
//     ERateLimited and no longer logged one by one; the right secret still
//     passes, so nobody can lock a bank out by sending its id. A budget is
//     checked before and counted after each check, so the requests already
//     in flight when it fills are still checked: it is exact to within the
//     concurrency of the flood, which is all a resource limit needs.
//   - The source address is the TCP peer's IP (an IPv6 peer's /64); the
//     X-Forwarded-For header is read only from a trusted proxy
//     (WithTrustedProxies), so a client cannot choose its own key.
//   - Every refusal is logged (user name or client id, source address,
//     reason; never the password or secret) and counted in
//     softatm_auth_failures_total{kind, reason}. Client refusals past a
//     budget are logged once, when the budget is reached.
//   - A teller's session is bound to the teller's kiosk (Session.Kiosk).
//   - Sessions last a fixed time (default 8 h, one shift) and do not slide.
//   - Bank-client rows are cached in memory for a short TTL (default 60 s),
//     so that an API call (or a flood of wrong secrets) does not read the
//     database. So disabling a client or changing its secret takes up to
//     that TTL to reach every switch instance.
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
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
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
	DefaultSessionTTL = 8 * time.Hour
	DefaultBcryptCost = bcrypt.DefaultCost

	// DefaultLoginFreeFailures is how many failed logins one source address
	// may make for one user name in the window before delays start.
	DefaultLoginFreeFailures = 5
	// DefaultLoginDelayBase is the delay after the free failures; it
	// doubles with each further failure, up to DefaultLoginDelayMax.
	DefaultLoginDelayBase = time.Second
	DefaultLoginDelayMax  = 15 * time.Minute
	// DefaultLoginFailureWindow is how long a failed login is remembered.
	// At the delay cap that allows about 100 guesses a day per user and
	// address.
	DefaultLoginFailureWindow = 24 * time.Hour

	// DefaultBcryptConcurrency bounds bcrypt comparisons running at once in
	// the process (each takes a core for tens of milliseconds).
	DefaultBcryptConcurrency = 4
	// DefaultBcryptWaitMax bounds how long a login waits for its bcrypt
	// slot before it is refused (EUnavailable: try again).
	DefaultBcryptWaitMax = 5 * time.Second

	// DefaultClientFailureWindow is the window bank-client failures are
	// counted over, per source address and per client id.
	DefaultClientFailureWindow = time.Minute
	// DefaultClientFailuresPerAddr: past this many failures in the window,
	// an address is refused unchecked until its window ends.
	DefaultClientFailuresPerAddr = 20
	// DefaultClientFailuresPerID: past this many failures in the window, a
	// client id's further wrong secrets are ERateLimited and not logged one
	// by one (the right secret still passes).
	DefaultClientFailuresPerID = 20
	// DefaultFailureKeysMax bounds the addresses and client ids whose
	// failures are counted at once.
	DefaultFailureKeysMax = 10_000

	// DefaultClientCacheTTL is how long a bank client's row is trusted
	// without reading the database again; it is also how long a disabled
	// client may still be let in.
	DefaultClientCacheTTL = 60 * time.Second
	// DefaultClientCacheMax bounds the client cache; it is emptied when
	// full (there are about 40 banks and only known clients are cached).
	DefaultClientCacheMax = 1024
	DefaultTxRetryMax     = 10

	PasswordMinLen = 8
	// PasswordMaxLen is bcrypt's limit: it ignores (x/crypto refuses)
	// anything past 72 bytes. Client secrets have the same bound.
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
	freeFailures  int
	delayBase     time.Duration
	delayMax      time.Duration
	failureWindow time.Duration
	cacheTTL      time.Duration
	cacheMax      int
	txRetryMax    int
	now           func() time.Time
	log           *slog.Logger
	reg           prometheus.Registerer
	proxies       []netip.Prefix

	// clientKey keys the bank-client secret hashes; nil until
	// WithClientSecretKey.
	clientKey []byte

	bcryptConcurrency int
	bcryptWaitMax     time.Duration
	slots             *bcryptSlots

	clientWindow time.Duration
	perAddr      int
	perID        int
	failureKeys  int
	addrFailures *failureWindows
	idFailures   *failureWindows
	failures     *prometheus.CounterVec
	dummyOnce    sync.Once
	dummyHash    []byte
	cacheMu      sync.Mutex
	cache        map[string]cachedClient
}

// cachedClient is a bank_clients row as read at some time.
type cachedClient struct {
	bankCode string
	hash     string
	disabled bool
	until    time.Time
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

// WithClientSecretKey derives the key of the bank-client secret hashes from
// the server's secret (-secret): HMAC-SHA-256(serverSecret, a label of its
// own), so that the hashes share no key with the secret's other uses. Every
// instance, and `softatm admin`, must be given the same secret. Without it,
// creating or checking a bank client is EInternal.
func WithClientSecretKey(serverSecret []byte) Option {
	return func(s *Service) {
		if len(serverSecret) == 0 {
			s.clientKey = nil
			return
		}
		m := hmac.New(sha256.New, serverSecret)
		m.Write([]byte(clientKeyLabel))
		s.clientKey = m.Sum(nil)
	}
}

// WithRegisterer registers softatm_auth_failures_total on reg (default: not
// registered).
func WithRegisterer(reg prometheus.Registerer) Option { return func(s *Service) { s.reg = reg } }

// WithTrustedProxies names the reverse proxies (for example the TLS
// terminator in front of the switch) whose X-Forwarded-For SourceAddr
// believes (default none: the TCP peer is the source). Behind a proxy that
// is not named here, every request has the proxy's address, so all logins
// share one address's delays and bcrypt slot.
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	return func(s *Service) { s.proxies = append([]netip.Prefix(nil), prefixes...) }
}

// WithLoginFreeFailures sets how many failed logins one address may make for
// one user name in the window before delays start (default
// DefaultLoginFreeFailures).
func WithLoginFreeFailures(n int) Option { return func(s *Service) { s.freeFailures = n } }

// WithLoginDelay sets the first delay after the free failures and its cap
// (defaults DefaultLoginDelayBase, DefaultLoginDelayMax).
func WithLoginDelay(base, maxDelay time.Duration) Option {
	return func(s *Service) { s.delayBase, s.delayMax = base, maxDelay }
}

// WithLoginFailureWindow sets how long a failed login is remembered
// (default DefaultLoginFailureWindow).
func WithLoginFailureWindow(d time.Duration) Option {
	return func(s *Service) { s.failureWindow = d }
}

// WithBcryptConcurrency bounds bcrypt comparisons at once and how long a
// caller waits for one (defaults DefaultBcryptConcurrency,
// DefaultBcryptWaitMax).
func WithBcryptConcurrency(n int, waitMax time.Duration) Option {
	return func(s *Service) { s.bcryptConcurrency, s.bcryptWaitMax = n, waitMax }
}

// WithClientFailureLimits sets the bank-client failure budgets: perAddr
// failures per source address and perID per client id in window (defaults
// DefaultClientFailuresPerAddr, DefaultClientFailuresPerID,
// DefaultClientFailureWindow).
func WithClientFailureLimits(perAddr, perID int, window time.Duration) Option {
	return func(s *Service) { s.perAddr, s.perID, s.clientWindow = perAddr, perID, window }
}

// WithClientCacheTTL sets how long a bank client's row is cached (default
// DefaultClientCacheTTL; 0 disables the cache).
func WithClientCacheTTL(d time.Duration) Option { return func(s *Service) { s.cacheTTL = d } }

// WithTxRetryMax bounds transaction retries (default DefaultTxRetryMax).
func WithTxRetryMax(n int) Option { return func(s *Service) { s.txRetryMax = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// New returns a Service on the given pool.
func New(pool *pgxpool.Pool, opts ...Option) *Service {
	s := &Service{
		pool:              pool,
		sessionTTL:        DefaultSessionTTL,
		bcryptCost:        DefaultBcryptCost,
		freeFailures:      DefaultLoginFreeFailures,
		delayBase:         DefaultLoginDelayBase,
		delayMax:          DefaultLoginDelayMax,
		failureWindow:     DefaultLoginFailureWindow,
		bcryptConcurrency: DefaultBcryptConcurrency,
		bcryptWaitMax:     DefaultBcryptWaitMax,
		clientWindow:      DefaultClientFailureWindow,
		perAddr:           DefaultClientFailuresPerAddr,
		perID:             DefaultClientFailuresPerID,
		failureKeys:       DefaultFailureKeysMax,
		cacheTTL:          DefaultClientCacheTTL,
		cacheMax:          DefaultClientCacheMax,
		txRetryMax:        DefaultTxRetryMax,
		now:               time.Now,
		log:               slog.Default(),
		cache:             make(map[string]cachedClient),
	}
	for _, o := range opts {
		o(s)
	}
	// A budget below 1 would refuse every bank client: 1 is the least.
	s.perAddr, s.perID = max(s.perAddr, 1), max(s.perID, 1)
	s.slots = newBcryptSlots(s.bcryptConcurrency, s.bcryptWaitMax)
	s.addrFailures = newFailureWindows(s.clientWindow, s.failureKeys)
	s.idFailures = newFailureWindows(s.clientWindow, s.failureKeys)
	s.failures = newFailureCounter()
	if s.reg != nil {
		s.reg.MustRegister(s.failures)
	}
	return s
}

var (
	errBadClient  = softatm.Errorf(softatm.EUnauthorized, "invalid client credentials")
	errBadLogin   = softatm.Errorf(softatm.EUnauthorized, "invalid user name or password")
	errNoSession  = softatm.Errorf(softatm.EUnauthorized, "not logged in or session expired")
	errClientRate = softatm.Errorf(softatm.ERateLimited, "too many failed client authentications; try again later")
	errBusy       = softatm.Errorf(softatm.EUnavailable, "too many logins at once; try again")
	errNoKey      = softatm.Errorf(softatm.EInternal, "internal error")
)

// clientKeyLabel separates the client-hash key from every other key derived
// from the server secret (switch/code uses "softatm/numeric/v1" and
// "softatm/phone-last4/v1").
const clientKeyLabel = "softatm/auth/bank-client-secret/v1\x00"

// clientHashPrefix marks a bank_clients.secret_hash written as a keyed
// hash; anything else there is a bcrypt hash from before migration 00025.
const clientHashPrefix = "hmac-sha256:"

func internal(msg string, err error) error {
	return softatm.Wrap(softatm.EInternal, "internal error", fmt.Errorf("%s: %w", msg, err))
}

// dummy returns a bcrypt hash to compare against when the user is unknown,
// so that the answer takes as long as for a known one.
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

// clientHash is the stored form of a bank client's secret: HMAC-SHA-256
// over the id and the secret (so a hash copied to another client's row does
// not work there), hex, after clientHashPrefix. validClientID keeps NUL out
// of ids, so the encoding is unambiguous.
func (s *Service) clientHash(id, secret string) string {
	m := hmac.New(sha256.New, s.clientKey)
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return clientHashPrefix + hex.EncodeToString(m.Sum(nil))
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
// contain ':' (HTTP Basic splits on it); the secret must be
// ClientSecretMinLen to PasswordMaxLen bytes. It is stored as a keyed hash
// (see the package comment), so the Service needs WithClientSecretKey.
func (s *Service) CreateBankClient(ctx context.Context, id, bankCode, secret string) error {
	if !validClientID(id) {
		return softatm.Errorf(softatm.EInvalid, "client id must be 1 to %d characters from A-Z a-z 0-9 _ . -", clientIDMaxLen)
	}
	if len(secret) < ClientSecretMinLen || len(secret) > PasswordMaxLen {
		return softatm.Errorf(softatm.EInvalid, "client secret must be %d to %d bytes", ClientSecretMinLen, PasswordMaxLen)
	}
	if s.clientKey == nil {
		return softatm.Wrap(softatm.EInternal, "internal error", errors.New("no client-secret key: the server secret (SOFTATM_SECRET) is not set"))
	}
	h := s.clientHash(id, secret)
	err := s.runTx(ctx, func(tx pgx.Tx) error {
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

// AuthenticateBankClient checks a bank client's id and secret, sent from
// source (see SourceAddr). Unknown, disabled and wrong secret are the same
// EUnauthorized; past a failure budget (see the package comment) the answer
// is ERateLimited. Every refusal is logged and counted.
func (s *Service) AuthenticateBankClient(ctx context.Context, id, secret, source string) (BankClient, error) {
	if len(source) > sourceMaxLen {
		source = source[:sourceMaxLen]
	}
	now := s.now()
	if s.addrFailures.count(source, now) >= s.perAddr {
		// Not counted against the id: nothing was checked, and the id is
		// only what the over-budget address claims.
		s.clientRefused(ctx, id, source, reasonRateLimited, now, false)
		return BankClient{}, errClientRate
	}
	if s.clientKey == nil {
		s.log.ErrorContext(ctx, "bank client check without a client-secret key: the server secret is not set")
		return BankClient{}, errNoKey
	}
	row, found, err := s.clientRow(ctx, id, now)
	if err != nil {
		return BankClient{}, err
	}
	if !found {
		// Spend what a known client costs, so that the time says nothing
		// about which ids exist.
		_ = hmac.Equal([]byte(s.clientHash(id, secret)), []byte(clientHashPrefix))
		s.clientRefused(ctx, id, source, reasonUnknownCli, now, false)
		return BankClient{}, errBadClient
	}
	var ok bool
	if strings.HasPrefix(row.hash, clientHashPrefix) {
		ok = hmac.Equal([]byte(s.clientHash(id, secret)), []byte(row.hash))
	} else {
		// A bcrypt row from before migration 00025: checked (slowly, in a
		// bounded slot) while the client is within its budget, and
		// rewritten as a keyed hash once the secret is right.
		if s.idFailures.count(id, now) >= s.perID {
			s.clientRefused(ctx, id, source, reasonRateLimited, now, true)
			return BankClient{}, errClientRate
		}
		release, err := s.slots.acquire(ctx, source)
		if err != nil {
			s.clientRefused(ctx, id, source, reasonBusy, now, false)
			return BankClient{}, errBusy
		}
		ok = bcrypt.CompareHashAndPassword([]byte(row.hash), []byte(secret)) == nil
		release()
		if ok {
			// Best effort: a failed rewrite is tried again on the next
			// successful call, and must not refuse the right secret.
			if err := s.upgradeClientHash(ctx, id, row.hash, secret); err != nil {
				s.log.WarnContext(ctx, "upgrading a bank client's bcrypt hash", "client", id, "err", err)
			}
		}
	}
	switch {
	case !ok:
		if s.clientRefused(ctx, id, source, reasonBadSecret, now, true) > s.perID {
			return BankClient{}, errClientRate
		}
		return BankClient{}, errBadClient
	case row.disabled:
		s.clientRefused(ctx, id, source, reasonDisabled, now, true)
		return BankClient{}, errBadClient
	}
	return BankClient{ID: id, BankCode: row.bankCode}, nil
}

// clientRefused logs and counts one refused bank-client check, and counts
// it against the source address and (known is true for a client id that
// exists) the client id. It returns the id's failure count in its window
// (0 when not counted). A refusal is logged while both counts are within
// their budgets, and once more when a budget is first passed; after that
// only the metric counts, so that a flood cannot flood the logs.
func (s *Service) clientRefused(ctx context.Context, id, source, reason string, now time.Time, known bool) int {
	s.failures.WithLabelValues(kindClient, reason).Inc()
	na := s.addrFailures.add(source, now)
	ni := 0
	if known {
		ni = s.idFailures.add(id, now)
	}
	switch {
	case na <= s.perAddr && ni <= s.perID:
		s.log.WarnContext(ctx, "bank client authentication refused", "client", id, "source", source, "reason", reason)
	case na == s.perAddr+1 || ni == s.perID+1:
		s.log.WarnContext(ctx, "bank client authentication failures over their budget; further ones are counted, not logged, until the window ends",
			"client", id, "source", source, "reason", reason, "source_failures", na, "client_failures", ni, "window", s.clientWindow)
	}
	return ni
}

// clientRow reads id's bank_clients row, through the cache. Only existing
// clients are cached: caching unknown ids would let anyone fill the cache.
func (s *Service) clientRow(ctx context.Context, id string, now time.Time) (cachedClient, bool, error) {
	if s.cacheTTL > 0 {
		s.cacheMu.Lock()
		e, ok := s.cache[id]
		s.cacheMu.Unlock()
		if ok && now.Before(e.until) {
			return e, true, nil
		}
	}
	var c cachedClient
	err := s.pool.QueryRow(ctx, `SELECT bank_code, secret_hash, disabled FROM bank_clients WHERE id = $1`, id).
		Scan(&c.bankCode, &c.hash, &c.disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return cachedClient{}, false, nil
	}
	if err != nil {
		return cachedClient{}, false, internal("loading bank client", err)
	}
	if s.cacheTTL > 0 {
		c.until = now.Add(s.cacheTTL)
		s.cacheMu.Lock()
		if len(s.cache) >= s.cacheMax {
			for k, v := range s.cache {
				if !now.Before(v.until) {
					delete(s.cache, k)
				}
			}
			if len(s.cache) >= s.cacheMax {
				clear(s.cache)
			}
		}
		s.cache[id] = c
		s.cacheMu.Unlock()
	}
	return c, true, nil
}

// upgradeClientHash rewrites a bcrypt client row as a keyed hash, once its
// secret has just been checked. The UPDATE is conditional on the old hash,
// so a row re-created meanwhile is left alone.
func (s *Service) upgradeClientHash(ctx context.Context, id, oldHash, secret string) error {
	h := s.clientHash(id, secret)
	err := s.runTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE bank_clients SET secret_hash = $3 WHERE id = $1 AND secret_hash = $2`, id, oldHash, h)
		return err
	})
	if err != nil {
		return internal("upgrading bank client hash", err)
	}
	s.cacheMu.Lock()
	if e, ok := s.cache[id]; ok && e.hash == oldHash {
		e.hash = h
		s.cache[id] = e
	}
	s.cacheMu.Unlock()
	s.log.InfoContext(ctx, "bank client secret hash upgraded from bcrypt to a keyed hash", "client", id)
	return nil
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

// Login checks a staff user's password, sent from source (see SourceAddr),
// and opens a session. Unknown user, wrong password and disabled user are
// the same EUnauthorized; while the (user name, source) pair waits out its
// delay the answer is ELocked, whatever the password; when no bcrypt slot
// frees in time, EUnavailable. Every refusal is logged and counted.
func (s *Service) Login(ctx context.Context, username, password, source string) (Session, error) {
	name := normalizeUsername(username)
	if len(name) > usernameMaxLen {
		// Not a user name we could have; keep junk out of login_failures.
		name = name[:usernameMaxLen]
	}
	if len(source) > sourceMaxLen {
		source = source[:sourceMaxLen]
	}
	release, err := s.slots.acquire(ctx, source)
	if err != nil {
		s.loginRefused(ctx, name, source, reasonBusy, 0)
		return Session{}, errBusy
	}
	defer release()
	attempt := uuid.New()
	now := s.now()

	// Record the attempt as a failure before checking the password (see
	// the package comment); a right password removes it below.
	var wait time.Duration
	err = s.runTx(ctx, func(tx pgx.Tx) error {
		var (
			n    int
			last *time.Time
		)
		if err := tx.QueryRow(ctx, `SELECT count(*), max(failed_at) FROM login_failures
			WHERE username = $1 AND source = $2 AND failed_at > $3`,
			name, source, now.Add(-s.failureWindow)).Scan(&n, &last); err != nil {
			return err
		}
		wait = 0
		if d := s.loginDelay(n); d > 0 && last != nil {
			if until := last.Add(d); now.Before(until) {
				wait = until.Sub(now)
				return nil
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO login_failures (id, username, source, failed_at) VALUES ($1, $2, $3, $4)`,
			attempt, name, source, now)
		return err
	})
	if err != nil {
		return Session{}, internal("recording login attempt", err)
	}
	if wait > 0 {
		s.loginRefused(ctx, name, source, reasonDelayed, wait)
		secs := (wait + time.Second - 1) / time.Second
		return Session{}, softatm.Errorf(softatm.ELocked, "too many failed logins; try again in %d s", secs)
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
		s.loginRefused(ctx, name, source, reasonUnknownUser, 0)
		return Session{}, errBadLogin
	}
	if err != nil {
		return Session{}, internal("loading user", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		s.loginRefused(ctx, name, source, reasonBadPassword, 0)
		return Session{}, errBadLogin
	}
	if disabled {
		s.loginRefused(ctx, name, source, reasonDisabled, 0)
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
		if _, err := tx.Exec(ctx, `DELETE FROM login_failures WHERE username = $1 AND source = $2`, name, source); err != nil {
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

// loginDelay is how long after its last failure a (user name, source) pair
// with n failures in the window must wait: nothing for the free failures,
// then delayBase doubling with each further failure, up to delayMax.
func (s *Service) loginDelay(n int) time.Duration {
	if n < s.freeFailures {
		return 0
	}
	d := s.delayBase
	for i := s.freeFailures; i < n && d < s.delayMax; i++ {
		d *= 2
	}
	return min(d, s.delayMax)
}

// loginRefused logs and counts one refused login. The password is never
// logged; the user name is, as typed (normalised), so that the operator
// sees guessing at names that do not exist too.
func (s *Service) loginRefused(ctx context.Context, name, source, reason string, wait time.Duration) {
	s.failures.WithLabelValues(kindLogin, reason).Inc()
	args := []any{"user", name, "source", source, "reason", reason}
	if wait > 0 {
		args = append(args, "retry_in", wait.Round(time.Second))
	}
	level := slog.LevelWarn
	if reason == reasonDelayed {
		// Refused unchecked and cheaply; a flood of these is in the
		// metric, and the failures that caused the delay were logged.
		level = slog.LevelDebug
	}
	s.log.Log(ctx, level, "login refused", args...)
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
