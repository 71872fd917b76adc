package code

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/softatm/softatm"
)

// Keyring defaults.
const (
	// DefaultSkew is the clock difference tolerated between the switch that
	// signed a code and the one that verifies it.
	DefaultSkew = 30 * time.Second
	// DefaultMaxLifetime is the longest a code may live; Sign refuses a
	// later expiry, and a retired key verifies for this long after retiring.
	DefaultMaxLifetime = 24 * time.Hour
	// DefaultRefresh is how often keys are reloaded from the store, so that a
	// rotation on one instance reaches the others.
	DefaultRefresh = 10 * time.Second
	// DefaultMaxStale is how long the last loaded keys keep serving while
	// the store cannot be read; after that Sign and Verify fail with
	// EUnavailable rather than miss a revocation for longer.
	DefaultMaxStale = time.Minute
	// DefaultUnknownReloadMin spaces out the reloads forced by codes with an
	// unknown key id (a key activated elsewhere a moment ago), so that
	// forged key ids cannot turn every scan into a database read.
	DefaultUnknownReloadMin = time.Second
)

// Option configures a Keyring.
type Option func(*Keyring)

// WithSkew sets the tolerated clock skew (default DefaultSkew).
func WithSkew(d time.Duration) Option { return func(k *Keyring) { k.skew = d } }

// WithMaxLifetime sets the longest code lifetime (default DefaultMaxLifetime).
func WithMaxLifetime(d time.Duration) Option { return func(k *Keyring) { k.maxLifetime = d } }

// WithRefresh sets how often keys are reloaded (default DefaultRefresh).
func WithRefresh(d time.Duration) Option { return func(k *Keyring) { k.refresh = d } }

// WithMaxStale sets how long stale keys serve while the store is down
// (default DefaultMaxStale).
func WithMaxStale(d time.Duration) Option { return func(k *Keyring) { k.maxStale = d } }

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(k *Keyring) { k.now = now } }

// Keyring signs codes with the active key and verifies them with any key
// still in its verification window. It caches the store's keys and reloads
// them every refresh interval. It is safe for concurrent use.
type Keyring struct {
	store       KeyStore
	skew        time.Duration
	maxLifetime time.Duration
	refresh     time.Duration
	maxStale    time.Duration
	unknownMin  time.Duration
	now         func() time.Time

	snap       atomic.Pointer[snapshot]
	loadMu     sync.Mutex // one load at a time
	lastForced time.Time  // guarded by loadMu
}

type snapshot struct {
	keys     map[string]Key
	active   *Key
	loadedAt time.Time
}

// NewKeyring returns a Keyring over store. Keys are loaded on first use or
// by Load.
func NewKeyring(store KeyStore, opts ...Option) *Keyring {
	k := &Keyring{
		store:       store,
		skew:        DefaultSkew,
		maxLifetime: DefaultMaxLifetime,
		refresh:     DefaultRefresh,
		maxStale:    DefaultMaxStale,
		unknownMin:  DefaultUnknownReloadMin,
		now:         time.Now,
	}
	for _, o := range opts {
		o(k)
	}
	return k
}

// Load reads every key from the store now. It fails if a key breaks an
// invariant (bad length, private half not matching, more than one active):
// a broken key table is refused, never half-used.
func (k *Keyring) Load(ctx context.Context) error {
	k.loadMu.Lock()
	defer k.loadMu.Unlock()
	return k.loadLocked(ctx)
}

func (k *Keyring) loadLocked(ctx context.Context) error {
	keys, err := k.store.Keys(ctx)
	if err != nil {
		return softatm.Wrap(softatm.EUnavailable, "signing keys unavailable", err)
	}
	s := &snapshot{keys: make(map[string]Key, len(keys)), loadedAt: k.now()}
	for _, key := range keys {
		if err := key.check(); err != nil {
			return softatm.Wrap(softatm.EInternal, "signing keys are corrupt", err)
		}
		if _, dup := s.keys[key.ID]; dup {
			return softatm.Wrap(softatm.EInternal, "signing keys are corrupt", fmt.Errorf("key %s twice", key.ID))
		}
		s.keys[key.ID] = key
		if key.State == StateActive {
			if s.active != nil {
				return softatm.Wrap(softatm.EInternal, "signing keys are corrupt",
					fmt.Errorf("keys %s and %s both active", s.active.ID, key.ID))
			}
			a := key
			s.active = &a
		}
	}
	k.snap.Store(s)
	return nil
}

// current returns the cached keys, reloading them when older than the
// refresh interval. A failed reload keeps the old keys for up to maxStale.
func (k *Keyring) current(ctx context.Context) (*snapshot, error) {
	s := k.snap.Load()
	if s != nil && k.now().Sub(s.loadedAt) < k.refresh {
		return s, nil
	}
	k.loadMu.Lock()
	defer k.loadMu.Unlock()
	if s = k.snap.Load(); s != nil && k.now().Sub(s.loadedAt) < k.refresh {
		return s, nil // another caller reloaded while we waited
	}
	if err := k.loadLocked(ctx); err != nil {
		if s != nil && softatm.ErrorCode(err) == softatm.EUnavailable && k.now().Sub(s.loadedAt) < k.maxStale {
			return s, nil
		}
		return nil, err
	}
	return k.snap.Load(), nil
}

// lookup finds a key by id, reloading once (at most every unknownMin) when
// it is unknown, since it may have been created on another instance since
// the last refresh.
func (k *Keyring) lookup(ctx context.Context, id string) (Key, bool, error) {
	s, err := k.current(ctx)
	if err != nil {
		return Key{}, false, err
	}
	if key, ok := s.keys[id]; ok {
		return key, true, nil
	}
	k.loadMu.Lock()
	defer k.loadMu.Unlock()
	if s2 := k.snap.Load(); s2 != s {
		key, ok := s2.keys[id]
		return key, ok, nil
	}
	now := k.now()
	if !k.lastForced.IsZero() && now.Sub(k.lastForced) < k.unknownMin {
		return Key{}, false, nil
	}
	k.lastForced = now
	if err := k.loadLocked(ctx); err != nil {
		return Key{}, false, err
	}
	key, ok := k.snap.Load().keys[id]
	return key, ok, nil
}

// Sign signs p with the active key and returns the code's text. It sets
// p.Version and p.KeyID and truncates p.Expiry to the second (so the code
// never outlives the expiry asked for). The expiry must be in the future and
// no later than now + max lifetime.
func (k *Keyring) Sign(ctx context.Context, p Payload) (string, error) {
	s, err := k.current(ctx)
	if err != nil {
		return "", err
	}
	if s.active == nil || s.active.Private == nil {
		return "", softatm.Errorf(softatm.EInternal, "no active signing key")
	}
	now := k.now()
	p.Version, p.KeyID = versionOf(p.Kind), s.active.ID
	p.Expiry = p.Expiry.Truncate(time.Second)
	if !p.Expiry.After(now) {
		return "", softatm.Errorf(softatm.EInvalid, "the code would already be expired")
	}
	if p.Expiry.Sub(now) > k.maxLifetime {
		return "", softatm.Errorf(softatm.EInvalid, "the code would live longer than %s", k.maxLifetime)
	}
	signed, err := marshal(p)
	if err != nil {
		return "", softatm.Wrap(softatm.EInvalid, "the code payload is not valid", err)
	}
	return encode(signed, ed25519.Sign(s.active.Private, signed)), nil
}

// Verify decodes and checks a code: encoding, a known key still in its
// verification window, the signature, then the expiry. Any failure but the
// expiry is ECodeInvalid; a genuine but expired code is ECodeExpired. The
// expiry is checked after the signature so that a forged code never learns
// more than "invalid". Surrounding white space (a scanner's line break) is
// ignored. Verify does not look at the withdrawal's state: the caller does.
func (k *Keyring) Verify(ctx context.Context, text string) (Payload, error) {
	p, signed, sig, err := Decode(strings.TrimSpace(text))
	if err != nil {
		return Payload{}, err
	}
	key, ok, err := k.lookup(ctx, p.KeyID)
	if err != nil {
		return Payload{}, err
	}
	if !ok {
		return Payload{}, invalid("unknown key %s", p.KeyID)
	}
	if !ed25519.Verify(key.Public, signed, sig) {
		return Payload{}, invalid("bad signature (key %s)", key.ID)
	}
	now := k.now()
	switch key.State {
	case StateActive:
	case StateRetired:
		until := key.RetiredAt.Add(k.maxLifetime + k.skew)
		if now.After(until) {
			return Payload{}, invalid("key %s retired at %s", key.ID, fmtTime(key.RetiredAt))
		}
		// A key signs nothing after retiring, so none of its codes may
		// expire after RetiredAt + max lifetime.
		if p.Expiry.After(until) {
			return Payload{}, invalid("expiry %s beyond key %s's window", fmtTime(p.Expiry), key.ID)
		}
	default:
		return Payload{}, invalid("key %s is %s", key.ID, key.State)
	}
	// Sign never issues a code living longer than max lifetime.
	if p.Expiry.Sub(now) > k.maxLifetime+k.skew {
		return Payload{}, invalid("expiry %s too far ahead", fmtTime(p.Expiry))
	}
	if now.After(p.Expiry.Add(k.skew)) {
		return Payload{}, softatm.Errorf(softatm.ECodeExpired, "the withdrawal code has expired")
	}
	return p, nil
}
