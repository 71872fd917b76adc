package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger/schema"
	"github.com/softatm/softatm/switch/auth"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	tellerPass = "correct horse"
	secret     = "s3cret-s3cret-s3cret"
)

type env struct {
	pool  *pgxpool.Pool
	svc   *auth.Service
	clock *clock
}

// newEnv returns a Service on a fresh migrated database holding bank MB,
// post offices LS-001 and LS-002, kiosks K0000001 (LS-001) and K0000002
// (LS-002), bank client mb-app and users teller1, finance1 and admin1.
func newEnv(t *testing.T, opts ...auth.Option) *env {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, schema.MustMigratedDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, q := range []string{
		`INSERT INTO banks (code, name) VALUES ('MB', 'MB Bank')`,
		`INSERT INTO post_offices (code, name) VALUES ('LS-001', 'Lang Son 1'), ('LS-002', 'Lang Son 2')`,
		`INSERT INTO kiosks (id, post_office) VALUES ('K0000001', 'LS-001'), ('K0000002', 'LS-002')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c := &clock{t: time.Now().Truncate(time.Second)}
	opts = append([]auth.Option{auth.WithBcryptCost(bcrypt.MinCost), auth.WithClock(c.Now)}, opts...)
	e := &env{pool: pool, svc: auth.New(pool, opts...), clock: c}
	if err := e.svc.CreateBankClient(ctx, "mb-app", "MB", secret); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name   string
		role   auth.Role
		po, ki string
	}{
		{"teller1", auth.RoleTeller, "LS-001", "K0000001"},
		{"finance1", auth.RoleFinance, "", ""},
		{"admin1", auth.RoleAdmin, "", ""},
	} {
		if _, err := e.svc.CreateUser(ctx, u.name, tellerPass, u.role, u.po, u.ki); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := softatm.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestAuthenticateBankClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	c, err := e.svc.AuthenticateBankClient(ctx, "mb-app", secret)
	if err != nil || c != (auth.BankClient{ID: "mb-app", BankCode: "MB"}) {
		t.Fatalf("good secret: %+v %v", c, err)
	}
	_, err = e.svc.AuthenticateBankClient(ctx, "mb-app", secret+"x")
	wantCode(t, err, softatm.EUnauthorized)
	_, err2 := e.svc.AuthenticateBankClient(ctx, "nobody", secret)
	wantCode(t, err2, softatm.EUnauthorized)
	if softatm.ErrorMessage(err) != softatm.ErrorMessage(err2) {
		t.Errorf("bad secret and unknown client say different things: %q, %q", err, err2)
	}
	if err := e.svc.SetBankClientDisabled(ctx, "mb-app", true); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.AuthenticateBankClient(ctx, "mb-app", secret)
	wantCode(t, err, softatm.EUnauthorized)

	// The secret is stored as a bcrypt hash, never in clear.
	var h string
	if err := e.pool.QueryRow(ctx, `SELECT secret_hash FROM bank_clients WHERE id = 'mb-app'`).Scan(&h); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, secret) || bcrypt.CompareHashAndPassword([]byte(h), []byte(secret)) != nil {
		t.Fatalf("stored secret %q is not a bcrypt hash of the secret", h)
	}
}

func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	users := []struct {
		name, user, pass string
		role             auth.Role
		po, kiosk        string
		code             string
	}{
		{"teller without post office", "t2", tellerPass, auth.RoleTeller, "", "K0000001", softatm.EInvalid},
		{"teller without kiosk", "t2x", tellerPass, auth.RoleTeller, "LS-001", "", softatm.EInvalid},
		{"kiosk at another post office", "t3x", tellerPass, auth.RoleTeller, "LS-001", "K0000002", softatm.EInvalid},
		{"unknown post office", "t4x", tellerPass, auth.RoleTeller, "XX-999", "K0000001", softatm.EInvalid},
		{"unknown kiosk", "t5x", tellerPass, auth.RoleTeller, "LS-001", "K9999999", softatm.EInvalid},
		{"short password", "t6x", "1234567", auth.RoleFinance, "", "", softatm.EInvalid},
		{"long password", "t7x", strings.Repeat("p", 73), auth.RoleFinance, "", "", softatm.EInvalid},
		{"bad role", "t8x", tellerPass, auth.Role("root"), "", "", softatm.EInvalid},
		{"bad user name", "a b", tellerPass, auth.RoleFinance, "", "", softatm.EInvalid},
		{"duplicate user, other case", "Teller1", tellerPass, auth.RoleFinance, "", "", softatm.EConflict},
	}
	for _, tc := range users {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.CreateUser(ctx, tc.user, tc.pass, tc.role, tc.po, tc.kiosk)
			wantCode(t, err, tc.code)
		})
	}
	clients := []struct {
		name, id, bank, secret, code string
	}{
		{"unknown bank", "x-app", "ZZ", secret, softatm.EInvalid},
		{"colon in id", "x:app", "MB", secret, softatm.EInvalid},
		{"short secret", "x-app", "MB", "short", softatm.EInvalid},
		{"duplicate", "mb-app", "MB", secret, softatm.EConflict},
	}
	for _, tc := range clients {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, e.svc.CreateBankClient(ctx, tc.id, tc.bank, tc.secret), tc.code)
		})
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	sess, err := e.svc.Login(ctx, " TELLER1 ", tellerPass)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Token == "" || sess.CSRF == "" || sess.Token == sess.CSRF {
		t.Fatalf("tokens: %+v", sess)
	}
	if sess.User.Username != "teller1" || sess.User.Role != auth.RoleTeller || sess.User.PostOffice != "LS-001" ||
		sess.User.Kiosk != "K0000001" || sess.Kiosk != "K0000001" {
		t.Fatalf("session user: %+v", sess)
	}
	if !sess.ExpiresAt.Equal(e.clock.Now().Add(auth.DefaultSessionTTL)) {
		t.Errorf("expires %v", sess.ExpiresAt)
	}
	got, err := e.svc.SessionByToken(ctx, sess.Token)
	if err != nil || got.User != sess.User || got.CSRF != sess.CSRF || got.Token != "" {
		t.Fatalf("SessionByToken: %+v %v", got, err)
	}
	// The token is never stored; its hash is the key.
	var n int
	h := sha256.Sum256([]byte(sess.Token))
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE id = $1 AND id <> $2`,
		hex.EncodeToString(h[:]), sess.Token).Scan(&n); err != nil || n != 1 {
		t.Fatalf("session row by hash: %d %v", n, err)
	}

	_, errPass := e.svc.Login(ctx, "teller1", "wrong password")
	wantCode(t, errPass, softatm.EUnauthorized)
	_, errUser := e.svc.Login(ctx, "nobody", tellerPass)
	wantCode(t, errUser, softatm.EUnauthorized)
	if softatm.ErrorMessage(errPass) != softatm.ErrorMessage(errUser) {
		t.Errorf("wrong password and unknown user differ: %q, %q", errPass, errUser)
	}

	if err := e.svc.Logout(ctx, sess.Token); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SessionByToken(ctx, sess.Token)
	wantCode(t, err, softatm.EUnauthorized)
	if err := e.svc.Logout(ctx, sess.Token); err != nil {
		t.Fatalf("second logout: %v", err)
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithSessionTTL(time.Hour))
	ctx := context.Background()
	sess, err := e.svc.Login(ctx, "finance1", tellerPass)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(59 * time.Minute)
	if _, err := e.svc.SessionByToken(ctx, sess.Token); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	e.clock.Add(time.Minute)
	_, err = e.svc.SessionByToken(ctx, sess.Token)
	wantCode(t, err, softatm.EUnauthorized)
	_, err = e.svc.SessionByToken(ctx, "not-a-token")
	wantCode(t, err, softatm.EUnauthorized)
	if n, err := e.svc.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
}

func TestDisabledUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	sess, err := e.svc.Login(ctx, "finance1", tellerPass)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetUserDisabled(ctx, "finance1", true); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SessionByToken(ctx, sess.Token)
	wantCode(t, err, softatm.EUnauthorized)
	_, err = e.svc.Login(ctx, "finance1", tellerPass)
	wantCode(t, err, softatm.EUnauthorized)
}

func TestLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithMaxLoginFailures(3))
	ctx := context.Background()
	for range 3 {
		_, err := e.svc.Login(ctx, "teller1", "wrong password")
		wantCode(t, err, softatm.EUnauthorized)
	}
	_, err := e.svc.Login(ctx, "teller1", tellerPass)
	wantCode(t, err, softatm.ELocked)
	// Unknown names lock the same way, revealing nothing.
	for range 3 {
		_, _ = e.svc.Login(ctx, "ghost", "whatever1")
	}
	_, err = e.svc.Login(ctx, "ghost", "whatever1")
	wantCode(t, err, softatm.ELocked)
	// Other users are not affected.
	if _, err := e.svc.Login(ctx, "admin1", tellerPass); err != nil {
		t.Fatalf("other user: %v", err)
	}
	// The window slides.
	e.clock.Add(auth.DefaultLoginFailureWindow + time.Second)
	if _, err := e.svc.Login(ctx, "teller1", tellerPass); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestSuccessClearsFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithMaxLoginFailures(3))
	ctx := context.Background()
	for range 2 {
		_, _ = e.svc.Login(ctx, "teller1", "wrong password")
	}
	if _, err := e.svc.Login(ctx, "teller1", tellerPass); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, _ = e.svc.Login(ctx, "teller1", "wrong password")
	}
	if _, err := e.svc.Login(ctx, "teller1", tellerPass); err != nil {
		t.Fatalf("failures before a success still counted: %v", err)
	}
}

func TestParallelGuessesAreCapped(t *testing.T) {
	t.Parallel()
	const limit = 3
	e := newEnv(t, auth.WithMaxLoginFailures(limit))
	ctx := context.Background()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		unauth   int
		start    = make(chan struct{})
		attempts = 12
	)
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := e.svc.Login(ctx, "teller1", "wrong password")
			mu.Lock()
			defer mu.Unlock()
			switch softatm.ErrorCode(err) {
			case softatm.EUnauthorized:
				unauth++
			case softatm.ELocked:
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if unauth > limit {
		t.Fatalf("%d password checks ran, cap is %d", unauth, limit)
	}
}

// --- HTTP ---

type errBody struct {
	Error struct{ Code, Message string }
}

func decodeErr(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b errBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if b.Error.Message == "" {
		t.Errorf("no message in error")
	}
	return b.Error.Code
}

func okHandler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := auth.BankClientFrom(r.Context()); ok {
			_, _ = w.Write([]byte("client " + c.ID + " " + c.BankCode))
			return
		}
		if s, ok := auth.SessionFrom(r.Context()); ok {
			_, _ = w.Write([]byte("staff " + s.User.Username))
			return
		}
		t.Error("handler reached without identity")
	})
}

func TestRequireBankClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := httptest.NewServer(e.svc.RequireBankClient(okHandler(t)))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, user, pass string
		basic            bool
		status           int
	}{
		{"good", "mb-app", secret, true, http.StatusOK},
		{"good again (cached)", "mb-app", secret, true, http.StatusOK},
		{"bad secret", "mb-app", "wrong-wrong-wrong-wrong", true, http.StatusUnauthorized},
		{"unknown client", "zz-app", secret, true, http.StatusUnauthorized},
		{"no credentials", "", "", false, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
		if tc.basic {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if tc.status == http.StatusUnauthorized {
			if c := decodeErr(t, resp); c != softatm.EUnauthorized {
				t.Errorf("%s: code %q", tc.name, c)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: no WWW-Authenticate", tc.name)
			}
		}
		resp.Body.Close()
	}
}

func TestBankClientCacheExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithClientCacheTTL(time.Minute))
	h := e.svc.RequireBankClient(okHandler(t))
	call := func() int {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.SetBasicAuth("mb-app", secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if call() != http.StatusOK {
		t.Fatal("first call")
	}
	if err := e.svc.SetBankClientDisabled(context.Background(), "mb-app", true); err != nil {
		t.Fatal(err)
	}
	// Within the TTL the cached success stands (documented); after it, the
	// database decides.
	if call() != http.StatusOK {
		t.Fatal("cached call")
	}
	e.clock.Add(time.Minute)
	if c := call(); c != http.StatusUnauthorized {
		t.Fatalf("after cache TTL: %d", c)
	}
}

func TestRequireStaff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	teller, err := e.svc.Login(ctx, "teller1", tellerPass)
	if err != nil {
		t.Fatal(err)
	}
	finance, err := e.svc.Login(ctx, "finance1", tellerPass)
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := e.svc.Login(ctx, "admin1", tellerPass)
	if err != nil {
		t.Fatal(err)
	}
	// Expire only the admin's session, by moving its row back in time.
	if _, err := e.pool.Exec(ctx, `UPDATE sessions SET expires_at = $1 WHERE kiosk = '' AND user_id =
		(SELECT id FROM users WHERE username = 'admin1')`, e.clock.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/teller", e.svc.RequireStaff(auth.RoleTeller)(okHandler(t)))
	mux.Handle("/any", e.svc.RequireStaff()(okHandler(t)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, path string
		sess               *auth.Session
		csrf               string
		status             int
		code               string
	}{
		{"teller GET", http.MethodGet, "/teller", &teller, "", http.StatusOK, ""},
		{"teller POST with CSRF", http.MethodPost, "/teller", &teller, teller.CSRF, http.StatusOK, ""},
		{"POST without CSRF", http.MethodPost, "/teller", &teller, "", http.StatusForbidden, softatm.EForbidden},
		{"POST with wrong CSRF", http.MethodPost, "/teller", &teller, finance.CSRF, http.StatusForbidden, softatm.EForbidden},
		{"wrong role", http.MethodGet, "/teller", &finance, "", http.StatusForbidden, softatm.EForbidden},
		{"any role", http.MethodDelete, "/any", &finance, finance.CSRF, http.StatusOK, ""},
		{"no cookie", http.MethodGet, "/any", nil, "", http.StatusUnauthorized, softatm.EUnauthorized},
		{"expired session", http.MethodGet, "/any", &expiring, "", http.StatusUnauthorized, softatm.EUnauthorized},
		{"forged token", http.MethodGet, "/any", &auth.Session{Token: "forged"}, "", http.StatusUnauthorized, softatm.EUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.sess != nil {
				req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: tc.sess.Token})
			}
			if tc.csrf != "" {
				req.Header.Set(auth.HeaderCSRF, tc.csrf)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.code != "" {
				if c := decodeErr(t, resp); c != tc.code {
					t.Fatalf("code %q, want %q", c, tc.code)
				}
			}
		})
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sess, err := e.svc.Login(context.Background(), "teller1", tellerPass)
	if err != nil {
		t.Fatal(err)
	}
	for _, tls := range []bool{false, true} {
		req := httptest.NewRequest(http.MethodPost, "/v1/teller/login", nil)
		if !tls {
			req.TLS = nil
		} else {
			req = httptest.NewRequest(http.MethodPost, "https://switch.example/v1/teller/login", nil)
		}
		rec := httptest.NewRecorder()
		e.svc.SetSessionCookie(rec, req, sess)
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("cookies: %v", cookies)
		}
		c := cookies[0]
		if c.Name != auth.SessionCookie || c.Value != sess.Token || c.Path != "/" || !c.HttpOnly ||
			c.SameSite != http.SameSiteStrictMode || c.Secure != tls {
			t.Errorf("tls=%v: cookie %+v", tls, c)
		}
		if !c.Expires.Equal(sess.ExpiresAt.UTC().Truncate(time.Second)) || c.MaxAge <= 0 {
			t.Errorf("tls=%v: expires %v max-age %d, want %v", tls, c.Expires, c.MaxAge, sess.ExpiresAt)
		}
	}
	rec := httptest.NewRecorder()
	e.svc.ClearSessionCookie(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 || c[0].Value != "" {
		t.Errorf("clear cookie: %+v", c)
	}
}

func TestScopes(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	if _, ok := auth.BankClientScope(r); ok {
		t.Error("bank scope without a client")
	}
	if _, ok := auth.StaffScope(r); ok {
		t.Error("staff scope without a session")
	}
	rc := r.WithContext(auth.WithBankClient(r.Context(), auth.BankClient{ID: "mb-app", BankCode: "MB"}))
	if s, ok := auth.BankClientScope(rc); !ok || s != "client:mb-app" {
		t.Errorf("bank scope %q %v", s, ok)
	}
	var sess auth.Session
	sess.User.ID[0] = 1
	rs := r.WithContext(auth.WithSession(r.Context(), sess))
	if s, ok := auth.StaffScope(rs); !ok || s != "user:"+sess.User.ID.String() {
		t.Errorf("staff scope %q %v", s, ok)
	}
}
