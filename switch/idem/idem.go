// Package idem owns HTTP idempotency keys (DESIGN.md, "Rules that make it
// safe", rule 5): every state-changing request carries an Idempotency-Key;
// the same key with the same request returns the first answer, with another
// request 422, and while the first is still running 409.
//
// The record is a row of idempotency_keys in PostgreSQL/CockroachDB
// (migration 00023), not a Redis key, so that a key keeps its meaning across
// a Redis flush and a restart of every switch instance.
//
// How a request goes through Middleware:
//
//  1. Its own short SERIALIZABLE transaction, committed before the handler
//     runs, inserts a 'running' row holding a lease (or finds the existing
//     row and decides: replay, 409 or 422). Two requests racing for the same
//     new key conflict in that transaction; the loser is retried and then
//     sees the winner's row, so exactly one runs the handler.
//  2. The handler runs with a buffered ResponseWriter.
//  3. A second transaction stores the response and marks the row 'done',
//     but only if this request still holds the lease (owner column); then
//     the response goes to the client (WithLazyCommit: before, see there).
//
// Durability: a Store WithLazyCommit commits its records without waiting
// for their WAL flush (ledger.LazyCommit), so a request waits for the one
// durable commit of its business write, not for two more around it. A
// crash or failover of the database within its flush interval may lose
// the newest records; since WAL is one sequence, a record is only lost
// together with everything committed after it. So:
//   - A lost 'running' row lost its handler's business writes too (they
//     came after it): a retry runs the handler on the state before.
//   - A lost 'done' (the response) over a kept 'running' row: the retry
//     gets 409 until the lease ends, then runs the handler again on the
//     state the first run left. The answer is then the first answer only
//     where the handler answers a retry from its business row: a create
//     binds its key to its withdrawal, a confirm its key to its payout,
//     a scan re-claims for the same teller. serve uses lazy records for
//     those three routes only; the others keep durable ones.
//
// Nothing is paid twice either way: that rests on the state machine's
// conditional moves, never on this record (see the 5xx rule below).
//
// Decisions where DESIGN.md is silent:
//   - Keys are scoped to the caller (bank client id or staff user id), so two
//     callers cannot collide or read each other's stored answers.
//   - The request hash covers method, path and body, so the same key sent to
//     another endpoint is refused (422) rather than answered with another
//     endpoint's response.
//   - A response with status >= 500 is not stored: the row is deleted so the
//     client may retry with the same key. A 5xx means the switch could not
//     give an answer (database or Redis down, bank link down, a bug), not that
//     the answer is "no"; storing it would pin a passing failure to the key
//     forever and leave the client no way to finish the operation except
//     inventing a new key, which is exactly what idempotency keys are meant to
//     prevent. This is safe because handlers are already written so that a
//     retry after a failure is harmless: the database state machine
//     (conditional UPDATEs) refuses a second payout, and a failed 0100 is
//     always followed by a reversal.
//   - A 'running' row whose lease has passed is taken over: the first request
//     is presumed dead (its process crashed). The lease (default 30 s) must
//     be longer than any handler's own timeout, so a merely slow request is
//     never taken over; if it were, its late result is not stored (the owner
//     check fails) and the handlers' own state checks keep the money safe.
//   - Safe methods (GET, HEAD, OPTIONS) pass straight through: they change
//     nothing, so they need no key.
//   - Only the status, Content-Type and body are replayed, with
//     Cache-Control: no-store and X-Content-Type-Options: nosniff as every
//     API answer has them; handlers must not put anything else the client
//     needs into other headers.
//
// This package must not import any other softatm package except the root
// softatm package (the error codes and the error writer) and ledger (whose
// committer carries the store's writes); imports_test.go checks it.
package idem

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// Settings and their defaults.
const (
	// DefaultLease is how long a 'running' row belongs to its request. It
	// should be longer than the slowest handler (the bank's 10 s timeout
	// plus reversal queueing), so that a slow request is rarely taken over
	// while still running; handlers stay correct if one is (a create binds
	// its key to its withdrawal, see atmswitch.Service.Create), so it is
	// kept short: a client whose first request died waits this long.
	DefaultLease = 15 * time.Second
	// DefaultMaxBodyBytes caps a request body; the whole body is read into
	// memory to hash it, so the cap bounds memory per request. A larger body
	// is answered 413 request_too_large (softatm.ETooLarge).
	DefaultMaxBodyBytes = 64 << 10
	// DefaultStoreTimeout bounds storing the response after the handler ran.
	// It runs detached from the request's context, so that a client hanging
	// up does not leave the row 'running' until its lease ends.
	DefaultStoreTimeout = 5 * time.Second

	// KeyMaxLen is the longest accepted Idempotency-Key.
	KeyMaxLen = 100
	// HeaderKey is the request header carrying the key.
	HeaderKey = "Idempotency-Key"
	// HeaderReplayed is set to "true" on a replayed response.
	HeaderReplayed = "Idempotent-Replayed"
)

// Store records idempotency keys in the database and provides the HTTP
// middleware that enforces them.
type Store struct {
	lease        time.Duration
	maxBodyBytes int64
	storeTimeout time.Duration
	ledger       *ledger.Ledger // commits the store's writes
	aead         cipher.AEAD    // nil: bodies stored as they are (WithSealKey)
	lazy         bool           // WithLazyCommit
	now          func() time.Time
	log          *slog.Logger
}

// Option configures a Store.
type Option func(*Store)

// WithLease sets how long a 'running' row is held before another request
// may take it over (default DefaultLease).
func WithLease(d time.Duration) Option { return func(s *Store) { s.lease = d } }

// WithClock sets the clock used for leases and creation times (default
// time.Now); tests use it to pass a lease without sleeping.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithLazyCommit commits the store's records without waiting for their
// WAL flush (ledger.LazyCommit; see "Durability" in the package comment),
// and sends a handler's answer before storing it (a 5xx excepted): only
// for routes whose handlers answer a retry from the business row.
func WithLazyCommit() Option { return func(s *Store) { s.lazy = true } }

// WithMaxBodyBytes sets the request body cap (default DefaultMaxBodyBytes).
func WithMaxBodyBytes(n int64) Option { return func(s *Store) { s.maxBodyBytes = n } }

// WithStoreTimeout sets the bound on storing a response (default
// DefaultStoreTimeout).
func WithStoreTimeout(d time.Duration) Option { return func(s *Store) { s.storeTimeout = d } }

// WithLogger sets the logger for failures that cannot be returned to the
// client (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// New returns a Store whose writes go through committer (in serve, a
// committer of their own: the keys share no table with the ledger's), so
// they share its batches and commits.
func New(committer *ledger.Ledger, opts ...Option) *Store {
	s := &Store{
		ledger:       committer,
		lease:        DefaultLease,
		maxBodyBytes: DefaultMaxBodyBytes,
		storeTimeout: DefaultStoreTimeout,
		now:          time.Now,
		log:          slog.Default(),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ValidKey reports whether k is an acceptable Idempotency-Key: 1 to
// KeyMaxLen characters from [A-Za-z0-9_.:-]. The set is narrow on purpose:
// keys are logged and stored, and a UUID or a ULID fits it.
func ValidKey(k string) bool {
	if len(k) < 1 || len(k) > KeyMaxLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// RequestHash is the SHA-256 of method, path and body, each length-prefixed
// so that no two different requests share an encoding.
func RequestHash(method, path string, body []byte) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(method), []byte(path), body} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

// decision is what begin found for a key.
type decision int

const (
	decideRun     decision = iota // this request holds the lease: run the handler
	decideReplay                  // done with the same hash: replay
	decideReused                  // another request used this key: 422
	decideRunning                 // the first request still holds the lease: 409
)

// stored is a response kept for replay.
type stored struct {
	status      int
	contentType string
	body        []byte
}

// begin looks up (scope, key) and, when the request should run, inserts or
// takes over the row with a fresh lease held by owner. It commits before it
// returns, so the lease is visible to every other instance while the handler
// runs.
func (s *Store) begin(ctx context.Context, scope, key string, hash []byte, owner uuid.UUID) (decision, stored, error) {
	var (
		d   decision
		res stored
	)
	for range beginTriesMax {
		// A new key (the usual case) in one statement.
		now := s.now()
		n, err := s.exec(ctx, `
			INSERT INTO idempotency_keys (scope, key, request_hash, state, owner, lease_until, created_at)
			VALUES ($1, $2, $3, 'running', $4, $5, $6) ON CONFLICT (scope, key) DO NOTHING`,
			scope, key, hash, owner, now.Add(s.lease), now)
		if err != nil {
			return 0, stored{}, err
		}
		if n == 1 {
			return decideRun, stored{}, nil
		}
		// The key is known: decide from its row.
		gone := false
		err = s.runTx(ctx, func(tx pgx.Tx) error {
			now := s.now()
			var (
				gotHash    []byte
				state      string
				leaseUntil time.Time
			)
			res, gone = stored{}, false
			err := tx.QueryRow(ctx, `
				SELECT request_hash, state, status, content_type, body, lease_until
				FROM idempotency_keys WHERE scope = $1 AND key = $2`,
				scope, key).Scan(&gotHash, &state, &res.status, &res.contentType, &res.body, &leaseUntil)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				gone = true // a failed first request deleted it meanwhile
				return nil
			case err != nil:
				return err
			case !bytes.Equal(gotHash, hash):
				d = decideReused
				return nil
			case state == "done":
				d = decideReplay
				return nil
			case now.Before(leaseUntil):
				d = decideRunning
				return nil
			default:
				// The lease has passed: the first request is presumed dead.
				_, err = tx.Exec(ctx, `
					UPDATE idempotency_keys SET owner = $3, lease_until = $4
					WHERE scope = $1 AND key = $2 AND state = 'running'`,
					scope, key, owner, now.Add(s.lease))
				d = decideRun
				return err
			}
		})
		if err == nil && !gone && d == decideReplay {
			// Opened here, not in the committer's transaction: every unit
			// queued behind this one would wait for the cipher.
			res.body, err = s.open(scope, key, res.body)
		}
		if err != nil || !gone {
			return d, res, err
		}
	}
	return 0, stored{}, errors.New("idempotency key deleted and inserted concurrently, again and again")
}

// beginTriesMax bounds begin's rounds of insert-or-read when the key's row
// keeps vanishing between the two (first requests failing meanwhile).
const beginTriesMax = 3

// finish stores the response of the request holding the lease and marks the
// row done; a 5xx response deletes the row instead (see the package
// comment). It reports false when owner no longer holds the row (taken over).
func (s *Store) finish(ctx context.Context, scope, key string, owner uuid.UUID, res stored) (bool, error) {
	var n int64
	var err error
	if res.status >= 500 {
		n, err = s.exec(ctx, `
			DELETE FROM idempotency_keys
			WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'running'`,
			scope, key, owner)
	} else {
		body, serr := s.seal(scope, key, res.body)
		if serr != nil {
			return false, serr
		}
		if body == nil {
			body = []byte{}
		}
		n, err = s.exec(ctx, `
			UPDATE idempotency_keys
			SET state = 'done', status = $4, content_type = $5, body = $6
			WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'running'`,
			scope, key, owner, res.status, res.contentType, body)
	}
	return n == 1, err
}

// release deletes the row of a request whose handler panicked, so that the
// client may retry at once instead of waiting for the lease.
func (s *Store) release(ctx context.Context, scope, key string, owner uuid.UUID) error {
	_, err := s.exec(ctx, `
		DELETE FROM idempotency_keys
		WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'running'`,
		scope, key, owner)
	return err
}

// Purge deletes finished keys created before the given time and returns how
// many it deleted. Keys only need to outlive the longest client retry
// window; the operator runs this periodically. 'running' rows are kept: they
// end by themselves (finish, or a takeover after the lease).
func (s *Store) Purge(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.runTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE state = 'done' AND created_at < $1`, before)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// Middleware enforces idempotency keys on state-changing requests. scope
// returns the authenticated caller's identity, so it must run after the
// authentication middleware; ok=false answers 401.
func (s *Store) Middleware(scope func(r *http.Request) (string, bool)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
				next.ServeHTTP(w, r)
				return
			}
			sc, ok := scope(r)
			if !ok || sc == "" {
				softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EUnauthorized, "authentication required"))
				return
			}
			key := r.Header.Get(HeaderKey)
			if !ValidKey(key) {
				softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EInvalid,
					"header %s is required: 1 to %d characters from A-Z a-z 0-9 _ . : -", HeaderKey, KeyMaxLen))
				return
			}
			body, err := readBody(r, s.maxBodyBytes)
			if err != nil {
				if errors.Is(err, errTooLarge) {
					softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.ETooLarge,
						"request body larger than %d bytes", s.maxBodyBytes))
					return
				}
				softatm.WriteError(w, r, s.log, softatm.Wrap(softatm.EInvalid, "cannot read request body", err))
				return
			}
			hash := RequestHash(r.Method, r.URL.Path, body)
			owner := uuid.New()

			d, prev, err := s.begin(r.Context(), sc, key, hash, owner)
			if err != nil {
				// Logged by the writer (a 5xx), with the key it concerns.
				softatm.WriteError(w, r, s.log.With("scope", sc, "key", key), softatm.Wrap(softatm.EUnavailable,
					"service unavailable, retry with the same key", fmt.Errorf("idempotency key lookup: %w", err)))
				return
			}
			switch d {
			case decideReused:
				softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EIdemReused,
					"this idempotency key was already used for a different request"))
				return
			case decideRunning:
				softatm.WriteError(w, r, s.log, softatm.Errorf(softatm.EInProgress,
					"a request with this idempotency key is still running; retry later"))
				return
			case decideReplay:
				if prev.contentType != "" {
					w.Header().Set("Content-Type", prev.contentType)
				}
				// Every stored answer is an API answer, sent first with
				// softatm.WriteJSON's headers: the replay keeps them, so
				// that a create's numeric code is not cached or sniffed.
				w.Header().Set("Cache-Control", "no-store")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.Header().Set(HeaderReplayed, "true")
				if prev.status >= http.StatusBadRequest {
					// The replayed refusal counts as what it says, not "ok".
					var b softatm.ErrorBody
					if json.Unmarshal(prev.body, &b) == nil && b.Error.Code != "" {
						softatm.SetOutcome(r, b.Error.Code)
					}
				}
				w.WriteHeader(prev.status)
				_, _ = w.Write(prev.body)
				return
			}

			s.run(w, r.WithContext(context.WithValue(r.Context(), keyCtx{}, sc+"/"+key)), next, sc, key, owner, body)
		})
	}
}

type keyCtx struct{}

// KeyFrom returns the scope and key of the request a handler is running
// for, as one string ("scope/key"), so that a handler can bind what it
// creates to the key in its own first write (a retry after a crash then
// finds it). "" outside the middleware.
func KeyFrom(ctx context.Context) string {
	k, _ := ctx.Value(keyCtx{}).(string)
	return k
}

// run calls the handler while this request holds the lease, stores its
// response and then sends it.
func (s *Store) run(w http.ResponseWriter, r *http.Request, next http.Handler, sc, key string, owner uuid.UUID, body []byte) {
	rec := &recorder{header: make(http.Header)}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))

	detached := context.WithoutCancel(r.Context())
	func() {
		defer func() {
			if p := recover(); p != nil {
				ctx, cancel := context.WithTimeout(detached, s.storeTimeout)
				defer cancel()
				if err := s.release(ctx, sc, key, owner); err != nil {
					s.log.ErrorContext(ctx, "releasing idempotency key after panic", "scope", sc, "key", key, "err", err)
				}
				panic(p)
			}
		}()
		next.ServeHTTP(rec, r)
	}()
	if rec.status == 0 {
		rec.status = http.StatusOK
	}

	// A lazy store's routes answer a retry from their business row, so
	// their answer goes out before it is stored (a 5xx, which deletes the
	// row so that a retry may run at once, still waits for that): the
	// caller waits for no commit of the record. Until the record is
	// stored, a retry gets 409 as if the first were still running; if it
	// never is, the retry runs the handler after the lease, as after a
	// lost lazy record ("Durability").
	early := s.lazy && rec.status < http.StatusInternalServerError
	if early {
		send(w, rec, true)
	}
	ctx, cancel := context.WithTimeout(detached, s.storeTimeout)
	defer cancel()
	res := stored{status: rec.status, contentType: rec.header.Get("Content-Type"), body: rec.body.Bytes()}
	held, err := s.finish(ctx, sc, key, owner, res)
	switch {
	case err != nil:
		// The handler's work is done and its answer is true; the client
		// gets it. The row stays 'running' until its lease ends, after
		// which a retry runs the handler again and meets the state the
		// first run left (the handlers' own state checks keep that safe).
		s.log.ErrorContext(ctx, "storing idempotent response failed", "scope", sc, "key", key, "err", err)
	case !held:
		s.log.WarnContext(ctx, "idempotency lease was taken over before the response was stored; lease shorter than the handler?",
			"scope", sc, "key", key, "lease", s.lease)
	}

	if !early {
		send(w, rec, false)
	}
}

// send writes a recorded response to w; flushed, with its length, it
// reaches the client whole while the handler goes on (to store it).
func send(w http.ResponseWriter, rec *recorder, flush bool) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if flush {
		w.Header().Set("Content-Length", strconv.Itoa(rec.body.Len()))
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
	if flush {
		_ = http.NewResponseController(w).Flush()
	}
}

// recorder buffers a handler's response so that it can be stored before it
// is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

var errTooLarge = errors.New("request body too large")

// readBody reads at most limit bytes of r's body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	defer r.Body.Close()
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// runTx runs fn through the store's committer (ledger.Run).
func (s *Store) runTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.ledger.Run(s.commitCtx(ctx), fn)
}

// exec runs one statement through the store's committer and returns the
// rows it changed.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	return s.ledger.Exec(s.commitCtx(ctx), &ledger.Stmt{SQL: sql, Args: args})
}

// commitCtx marks the store's writes lazy when it is WithLazyCommit.
func (s *Store) commitCtx(ctx context.Context) context.Context {
	if s.lazy {
		return ledger.LazyCommit(ctx)
	}
	return ctx
}
