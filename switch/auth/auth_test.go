package auth_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger/schema/schematest"
	"github.com/softatm/softatm/switch/auth"
	switchschema "github.com/softatm/softatm/switch/schema"
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
	// serverSecret is the switch's -secret the client hashes are keyed from.
	serverSecret = "test-server-secret"
	// Source addresses, as SourceAddr gives them.
	kioskAddr    = "192.0.2.10"   // the teller's post office
	bankAddr     = "198.51.100.5" // the bank's backend
	attackerAddr = "203.0.113.66"
)

type env struct {
	pool  *pgxpool.Pool
	svc   *auth.Service
	clock *clock
	reg   *prometheus.Registry
	logs  *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv returns a Service on a fresh migrated database holding bank MB,
// post offices LS-001 and LS-002, kiosks K0000001 (LS-001) and K0000002
// (LS-002), bank client mb-app and users teller1, finance1 and admin1.
func newEnv(t *testing.T, opts ...auth.Option) *env {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, schematest.MustMigratedDB(t, switchschema.All()...))
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
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	opts = append([]auth.Option{auth.WithBcryptCost(bcrypt.MinCost), auth.WithClock(c.Now),
		auth.WithClientSecretKey([]byte(serverSecret)), auth.WithRegisterer(reg),
		auth.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	e := &env{pool: pool, svc: auth.New(pool, opts...), clock: c, reg: reg, logs: logs}
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
	e := newEnv(t, auth.WithClientCacheTTL(0))
	ctx := context.Background()
	c, err := e.svc.AuthenticateBankClient(ctx, "mb-app", secret, bankAddr)
	if err != nil || c != (auth.BankClient{ID: "mb-app", BankCode: "MB"}) {
		t.Fatalf("good secret: %+v %v", c, err)
	}
	_, err = e.svc.AuthenticateBankClient(ctx, "mb-app", secret+"x", bankAddr)
	wantCode(t, err, softatm.EUnauthorized)
	_, err2 := e.svc.AuthenticateBankClient(ctx, "nobody", secret, bankAddr)
	wantCode(t, err2, softatm.EUnauthorized)
	if softatm.ErrorMessage(err) != softatm.ErrorMessage(err2) {
		t.Errorf("bad secret and unknown client say different things: %q, %q", err, err2)
	}
	if err := e.svc.SetBankClientDisabled(ctx, "mb-app", true); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.AuthenticateBankClient(ctx, "mb-app", secret, bankAddr)
	wantCode(t, err, softatm.EUnauthorized)

}

// TestClientSecretKeyedHash: a bank client's secret is stored as a keyed
// HMAC-SHA-256, not bcrypt and not in clear; a wrong secret of the same
// length, the secret under another server key, and the stored hash copied
// onto another client's row are all refused.
func TestClientSecretKeyedHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var h string
	if err := e.pool.QueryRow(ctx, `SELECT secret_hash FROM bank_clients WHERE id = 'mb-app'`).Scan(&h); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, secret) {
		t.Fatalf("stored secret holds the secret: %q", h)
	}
	if _, err := bcrypt.Cost([]byte(h)); err == nil {
		t.Fatalf("stored secret %q is a bcrypt hash", h)
	}
	m := hmac.New(sha256.New, []byte(serverSecret))
	m.Write([]byte("softatm/auth/bank-client-secret/v1\x00"))
	k := hmac.New(sha256.New, m.Sum(nil))
	k.Write([]byte("mb-app\x00" + secret))
	if want := "hmac-sha256:" + hex.EncodeToString(k.Sum(nil)); h != want {
		t.Fatalf("stored %q, want the keyed hash %q", h, want)
	}

	sameLen := []byte(secret)
	sameLen[len(sameLen)-1] ^= 1
	_, err := e.svc.AuthenticateBankClient(ctx, "mb-app", string(sameLen), bankAddr)
	wantCode(t, err, softatm.EUnauthorized)

	other := auth.New(e.pool, auth.WithClientSecretKey([]byte("another-server-secret")))
	_, err = other.AuthenticateBankClient(ctx, "mb-app", secret, bankAddr)
	wantCode(t, err, softatm.EUnauthorized)
	unkeyed := auth.New(e.pool)
	_, err = unkeyed.AuthenticateBankClient(ctx, "mb-app", secret, bankAddr)
	wantCode(t, err, softatm.EInternal)
	wantCode(t, unkeyed.CreateBankClient(ctx, "x-app", "MB", secret), softatm.EInternal)

	// mb-app's hash pasted onto another client's row does not let mb-app's
	// secret in as that client.
	if _, err := e.pool.Exec(ctx, `INSERT INTO bank_clients (id, bank_code, secret_hash) VALUES ('copy-app', 'MB', $1)`, h); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.AuthenticateBankClient(ctx, "copy-app", secret, bankAddr)
	wantCode(t, err, softatm.EUnauthorized)
}

// TestLegacyBcryptClientUpgraded: a client row hashed with bcrypt (before
// migration 00025) still lets the right secret in, once, and is then
// rewritten as the keyed hash; a wrong secret never upgrades it.
func TestLegacyBcryptClientUpgraded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithClientCacheTTL(0))
	ctx := context.Background()
	old, err := bcrypt.GenerateFromPassword([]byte("legacy-secret-0001"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO bank_clients (id, bank_code, secret_hash) VALUES ('old-app', 'MB', $1)`, string(old)); err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		var h string
		if err := e.pool.QueryRow(ctx, `SELECT secret_hash FROM bank_clients WHERE id = 'old-app'`).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	_, err = e.svc.AuthenticateBankClient(ctx, "old-app", "legacy-secret-0002", bankAddr)
	wantCode(t, err, softatm.EUnauthorized)
	if stored() != string(old) {
		t.Fatal("a wrong secret changed the stored hash")
	}
	for i := range 2 {
		c, err := e.svc.AuthenticateBankClient(ctx, "old-app", "legacy-secret-0001", bankAddr)
		if err != nil || c.BankCode != "MB" {
			t.Fatalf("call %d with the right secret: %+v %v", i, c, err)
		}
		if h := stored(); !strings.HasPrefix(h, "hmac-sha256:") {
			t.Fatalf("after call %d the row is still %q", i, h)
		}
	}
	_, err = e.svc.AuthenticateBankClient(ctx, "old-app", "legacy-secret-0002", bankAddr)
	wantCode(t, err, softatm.EUnauthorized)
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
	sess, err := e.svc.Login(ctx, " TELLER1 ", tellerPass, kioskAddr)
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

	_, errPass := e.svc.Login(ctx, "teller1", "wrong password", kioskAddr)
	wantCode(t, errPass, softatm.EUnauthorized)
	_, errUser := e.svc.Login(ctx, "nobody", tellerPass, kioskAddr)
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
	sess, err := e.svc.Login(ctx, "finance1", tellerPass, kioskAddr)
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
	sess, err := e.svc.Login(ctx, "finance1", tellerPass, kioskAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetUserDisabled(ctx, "finance1", true); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SessionByToken(ctx, sess.Token)
	wantCode(t, err, softatm.EUnauthorized)
	_, err = e.svc.Login(ctx, "finance1", tellerPass, kioskAddr)
	wantCode(t, err, softatm.EUnauthorized)
}

// TestLoginDelaysGrow: after the free failures from one address for one
// user, each attempt must wait a delay that doubles up to its cap; an
// attempt inside the delay is refused unchecked, even with the right
// password; the delay ends on its own.
func TestLoginDelaysGrow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithLoginFreeFailures(3), auth.WithLoginDelay(time.Second, 8*time.Second))
	ctx := context.Background()
	for range 3 {
		_, err := e.svc.Login(ctx, "teller1", "wrong password", attackerAddr)
		wantCode(t, err, softatm.EUnauthorized)
	}
	// Failures so far and the delay that follows the next one.
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		_, err := e.svc.Login(ctx, "teller1", tellerPass, attackerAddr)
		wantCode(t, err, softatm.ELocked)
		e.clock.Add(d - time.Millisecond)
		_, err = e.svc.Login(ctx, "teller1", tellerPass, attackerAddr)
		wantCode(t, err, softatm.ELocked)
		e.clock.Add(time.Millisecond)
		_, err = e.svc.Login(ctx, "teller1", "wrong password", attackerAddr)
		wantCode(t, err, softatm.EUnauthorized)
	}
	if got := failures(t, e, "login", "delayed"); got != 10 {
		t.Errorf("delayed refusals counted %v, want 10", got)
	}
	if got := failures(t, e, "login", "bad_password"); got != 8 {
		t.Errorf("bad passwords counted %v, want 8", got)
	}
	// Unknown names are slowed the same way, revealing nothing.
	for range 3 {
		_, _ = e.svc.Login(ctx, "ghost", "whatever1", attackerAddr)
	}
	_, err := e.svc.Login(ctx, "ghost", "whatever1", attackerAddr)
	wantCode(t, err, softatm.ELocked)
	// The failures are forgotten after the window.
	e.clock.Add(auth.DefaultLoginFailureWindow)
	if _, err := e.svc.Login(ctx, "teller1", tellerPass, attackerAddr); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestLoginIsNotALockOnTheUser: one address hammering a user name slows
// that address only; the teller logs in from the kiosk, and other users
// from the attacking address are not slowed either.
func TestLoginIsNotALockOnTheUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithLoginFreeFailures(3))
	ctx := context.Background()
	for range 20 {
		_, _ = e.svc.Login(ctx, "teller1", "wrong password", attackerAddr)
	}
	_, err := e.svc.Login(ctx, "teller1", tellerPass, attackerAddr)
	wantCode(t, err, softatm.ELocked)
	if _, err := e.svc.Login(ctx, "teller1", tellerPass, kioskAddr); err != nil {
		t.Fatalf("teller from the kiosk: %v", err)
	}
	if _, err := e.svc.Login(ctx, "admin1", tellerPass, attackerAddr); err != nil {
		t.Fatalf("another user from the attacking address: %v", err)
	}
	// The kiosk's success does not clear the attacker's delay.
	_, err = e.svc.Login(ctx, "teller1", tellerPass, attackerAddr)
	wantCode(t, err, softatm.ELocked)
}

// TestLoginFailuresLogged: every refused login is logged with the user name
// and the source address, and never the password.
func TestLoginFailuresLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithLoginFreeFailures(1))
	ctx := context.Background()
	_, _ = e.svc.Login(ctx, "teller1", "hunter2-wrong", attackerAddr)
	_, _ = e.svc.Login(ctx, "nobody-here", "hunter3-wrong", attackerAddr)
	_, _ = e.svc.Login(ctx, "teller1", "hunter4-wrong", attackerAddr) // delayed
	out := e.logs.String()
	for _, want := range []string{
		"user=teller1 source=" + attackerAddr + " reason=bad_password",
		"user=nobody-here source=" + attackerAddr + " reason=unknown_user",
		"user=teller1 source=" + attackerAddr + " reason=delayed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	for _, p := range []string{"hunter2", "hunter3", "hunter4"} {
		if strings.Contains(out, p) {
			t.Errorf("a password reached the logs:\n%s", out)
		}
	}
}

func TestSuccessClearsFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithLoginFreeFailures(3))
	ctx := context.Background()
	for range 2 {
		_, _ = e.svc.Login(ctx, "teller1", "wrong password", kioskAddr)
	}
	if _, err := e.svc.Login(ctx, "teller1", tellerPass, kioskAddr); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, _ = e.svc.Login(ctx, "teller1", "wrong password", kioskAddr)
	}
	if _, err := e.svc.Login(ctx, "teller1", tellerPass, kioskAddr); err != nil {
		t.Fatalf("failures before a success still counted: %v", err)
	}
}

// TestParallelGuessesAreCapped: guesses for one user from one address, in
// parallel on several switch instances sharing the database (within one
// instance the address's bcrypt slot already runs them one at a time), get
// no more password checks than the free failures.
func TestParallelGuessesAreCapped(t *testing.T) {
	t.Parallel()
	const limit = 3
	e := newEnv(t, auth.WithLoginFreeFailures(limit))
	ctx := context.Background()
	instances := []*auth.Service{e.svc}
	for range 3 {
		instances = append(instances, auth.New(e.pool, auth.WithBcryptCost(bcrypt.MinCost), auth.WithClock(e.clock.Now),
			auth.WithLoginFreeFailures(limit)))
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		unauth   int
		start    = make(chan struct{})
		attempts = 12
	)
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := instances[i%len(instances)].Login(ctx, "teller1", "wrong password", kioskAddr)
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
	teller, err := e.svc.Login(ctx, "teller1", tellerPass, kioskAddr)
	if err != nil {
		t.Fatal(err)
	}
	finance, err := e.svc.Login(ctx, "finance1", tellerPass, kioskAddr)
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := e.svc.Login(ctx, "admin1", tellerPass, kioskAddr)
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
	sess, err := e.svc.Login(context.Background(), "teller1", tellerPass, kioskAddr)
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

// failures reads softatm_auth_failures_total{kind, reason} from e's registry.
func failures(t *testing.T, e *env, kind, reason string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "softatm_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no softatm_auth_failures_total{kind=%q,reason=%q}", kind, reason)
	return 0
}

func TestFailureMetricLints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(e.reg, "softatm_auth_failures_total"); n == 0 {
		t.Error("softatm_auth_failures_total has no series before the first failure")
	}
}

// clientCall sends one bank-API request through RequireBankClient from
// addr with the given credentials and returns the status.
func clientCall(h http.Handler, addr, id, pass string) int {
	req := httptest.NewRequest(http.MethodPost, "/v1/withdrawals", nil)
	req.RemoteAddr = addr + ":40000"
	req.SetBasicAuth(id, pass)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestClientFloodThenRightSecret: an attacker floods mb-app with wrong
// secrets, 8 at a time, from one address and then from many. The attacking
// address is refused unchecked once over its budget; the client id's
// further wrong secrets are rate-limited; and the bank's own call with the
// right secret still succeeds (nobody can lock a bank out by its id).
func TestClientFloodThenRightSecret(t *testing.T) {
	t.Parallel()
	const perAddr, perID = 5, 12
	e := newEnv(t, auth.WithClientFailureLimits(perAddr, perID, time.Minute), auth.WithClientCacheTTL(time.Minute))
	h := e.svc.RequireBankClient(okHandler(t))
	wrong := strings.Repeat("x", len(secret))

	flood := func(n int, addr func(i int) string) map[int]int {
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			counts = map[int]int{}
			jobs   = make(chan int)
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					code := clientCall(h, addr(i), "mb-app", wrong)
					mu.Lock()
					counts[code]++
					mu.Unlock()
				}
			}()
		}
		for i := range n {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		return counts
	}

	// One address: perAddr refusals checked, then refused unchecked. The
	// budget is checked before and counted after each check, so requests
	// already in flight when it fills (at most workers-1) are still checked.
	const workers = 8
	got := flood(40, func(int) string { return attackerAddr })
	if n := got[http.StatusUnauthorized]; n < perAddr || n > perAddr+workers-1 || got[http.StatusOK] != 0 ||
		got[http.StatusTooManyRequests] != 40-n {
		t.Fatalf("one-address flood: %v, want %d (+ up to %d in flight) x 401, then 429", got, perAddr, workers-1)
	}
	checked := float64(got[http.StatusUnauthorized])
	unchecked := float64(got[http.StatusTooManyRequests])
	// Even the right secret from the attacking address waits out the window.
	if c := clientCall(h, attackerAddr, "mb-app", secret); c != http.StatusTooManyRequests {
		t.Errorf("right secret from the over-budget address: %d", c)
	}
	unchecked++
	// Many addresses, each within its budget: the client id's budget turns
	// the 401s (each one logged) into 429s.
	got = flood(40, func(i int) string { return fmt.Sprintf("203.0.113.%d", 100+i) })
	if got[http.StatusOK] != 0 || got[http.StatusUnauthorized]+got[http.StatusTooManyRequests] != 40 ||
		got[http.StatusTooManyRequests] < 40-perID {
		t.Fatalf("many-address flood: %v, want at most %d x 401, then 429", got, perID)
	}
	checked += 40
	if c := clientCall(h, bankAddr, "mb-app", secret); c != http.StatusOK {
		t.Fatalf("the bank's own call after the flood: %d", c)
	}
	if got := failures(t, e, "client", "bad_secret"); got != checked {
		t.Errorf("bad secrets counted %v, want %v", got, checked)
	}
	if got := failures(t, e, "client", "rate_limited"); got != unchecked {
		t.Errorf("unchecked refusals counted %v, want %v", got, unchecked)
	}
	// The window ends: the attacking address is checked again.
	e.clock.Add(time.Minute)
	if c := clientCall(h, attackerAddr, "mb-app", wrong); c != http.StatusUnauthorized {
		t.Errorf("after the window: %d", c)
	}
}

// TestClientFailuresLogged: a refused bank client is logged with its id and
// address, never the secret; past the budgets, once more, then not per
// request.
func TestClientFailuresLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithClientFailureLimits(3, 100, time.Minute))
	h := e.svc.RequireBankClient(okHandler(t))
	for range 10 {
		clientCall(h, attackerAddr, "mb-app", "guessed-secret-0042")
	}
	clientCall(h, bankAddr, "no-such-app", "guessed-secret-0043")
	out := e.logs.String()
	for _, want := range []string{
		"client=mb-app source=" + attackerAddr + " reason=bad_secret",
		"client=no-such-app source=" + bankAddr + " reason=unknown_client",
		"over their budget",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "source="+attackerAddr); n != 4 {
		t.Errorf("%d log lines for the attacking address, want 3 refusals and 1 over budget:\n%s", n, out)
	}
	if strings.Contains(out, "guessed-secret") || strings.Contains(out, secret) {
		t.Errorf("a secret reached the logs:\n%s", out)
	}
}

// TestBusyAddressDoesNotStarveOthers: while one address holds its bcrypt
// slot (a flood from it queues behind itself), a login from that address
// is refused as busy once its wait bound passes, and a login from another
// address goes through.
func TestBusyAddressDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, auth.WithBcryptConcurrency(2, 50*time.Millisecond))
	ctx := context.Background()
	release, err := e.svc.HoldBcryptSlot(ctx, attackerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	_, err = e.svc.Login(ctx, "teller1", tellerPass, attackerAddr)
	wantCode(t, err, softatm.EUnavailable)
	if _, err := e.svc.Login(ctx, "teller1", tellerPass, kioskAddr); err != nil {
		t.Fatalf("login from another address: %v", err)
	}
	if got := failures(t, e, "login", "busy"); got != 1 {
		t.Errorf("busy refusals counted %v, want 1", got)
	}
	// With every global slot held, everyone waits, then is refused.
	r2, err := e.svc.HoldBcryptSlot(ctx, "192.0.2.99")
	if err != nil {
		t.Fatal(err)
	}
	defer r2()
	_, err = e.svc.Login(ctx, "teller1", tellerPass, kioskAddr)
	wantCode(t, err, softatm.EUnavailable)
}

// TestSourceAddr: the source is the TCP peer; X-Forwarded-For counts only
// when the peer is a trusted proxy, read from the right, so a client that
// writes the header itself cannot choose its key.
func TestSourceAddr(t *testing.T) {
	t.Parallel()
	svc := auth.New(nil, auth.WithTrustedProxies(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")))
	tests := []struct{ remote, xff, want string }{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"192.0.2.1:1234", "10.9.9.9", "192.0.2.1"}, // not from a proxy: header ignored
		{"192.0.2.1:1234", "198.51.100.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:80", "", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "", "fe80::/64"},
		{"not-an-address", "", "not-an-address"},
		{"", "", ""},
		{"10.0.0.5:443", "198.51.100.7", "198.51.100.7"},
		{"10.0.0.5:443", "1.2.3.4, 198.51.100.7", "198.51.100.7"},           // the client wrote 1.2.3.4
		{"10.0.0.5:443", "1.2.3.4, 198.51.100.7, 10.0.0.9", "198.51.100.7"}, // two trusted hops
		{"10.0.0.5:443", "1.2.3.4, garbage", "10.0.0.5"},                    // malformed: the proxy
		{"10.0.0.5:443", "", "10.0.0.5"},                                    // no header: the proxy
		{"[fd00::1]:443", "2001:db8:9:9::1", "2001:db8:9:9::/64"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := svc.SourceAddr(r); got != tc.want {
			t.Errorf("SourceAddr(%q, XFF %q) = %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}
}
