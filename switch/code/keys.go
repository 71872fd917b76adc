package code

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/softatm/softatm"
)

// Key states.
const (
	StatePending = "pending" // generated, not yet signing
	StateActive  = "active"  // signs new codes; at most one key at a time
	StateRetired = "retired" // verifies old codes until RetiredAt + max lifetime + skew
)

// Key is one Ed25519 signing key. Private is nil on an instance that only
// verifies. Its String method never prints the private key.
type Key struct {
	ID          string // 1..8 characters [A-Z0-9]; carried in every code
	Public      ed25519.PublicKey
	Private     ed25519.PrivateKey
	State       string // StatePending, StateActive or StateRetired
	CreatedAt   time.Time
	ActivatedAt time.Time // zero until activated
	RetiredAt   time.Time // zero until retired
}

// String describes the key without its private half, so that a key printed
// by mistake (a log line, a %v) does not leak it.
func (k Key) String() string {
	return fmt.Sprintf("key %s %s public=%x created=%s activated=%s retired=%s",
		k.ID, k.State, []byte(k.Public), fmtTime(k.CreatedAt), fmtTime(k.ActivatedAt), fmtTime(k.RetiredAt))
}

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// check asserts the key's invariants: it is called on write (Create) and
// again on read (Keyring.Load), so a corrupt row is refused, not used.
func (k Key) check() error {
	if !validID(k.ID) {
		return fmt.Errorf("key id %q: want 1..8 characters A-Z 0-9", k.ID)
	}
	if len(k.Public) != ed25519.PublicKeySize {
		return fmt.Errorf("key %s: public key is %d bytes", k.ID, len(k.Public))
	}
	if k.Private != nil {
		if len(k.Private) != ed25519.PrivateKeySize {
			return fmt.Errorf("key %s: private key is %d bytes", k.ID, len(k.Private))
		}
		if !bytes.Equal(k.Private.Public().(ed25519.PublicKey), k.Public) {
			return fmt.Errorf("key %s: private key does not match public key", k.ID)
		}
	}
	switch k.State {
	case StatePending:
	case StateActive:
		if k.ActivatedAt.IsZero() {
			return fmt.Errorf("key %s: active without activation time", k.ID)
		}
	case StateRetired:
		if k.RetiredAt.IsZero() {
			return fmt.Errorf("key %s: retired without retirement time", k.ID)
		}
	default:
		return fmt.Errorf("key %s: unknown state %q", k.ID, k.State)
	}
	return nil
}

// KeyStore keeps signing keys. Implementations: PGKeyStore (the record) and
// MemKeyStore (tests, demos).
type KeyStore interface {
	// Keys returns every key, in creation order.
	Keys(ctx context.Context) ([]Key, error)
	// Create adds a pending key. A duplicate id is EConflict.
	Create(ctx context.Context, k Key) error
	// Activate makes id the one active key; the previously active key
	// becomes retired at the same instant. Activating the active key is a
	// no-op; a retired key cannot come back (EConflict); an unknown id is
	// ENotFound.
	Activate(ctx context.Context, id string, at time.Time) error
	// Retire retires id at the given time. Retiring a retired key again
	// moves RetiredAt earlier if at is earlier, never later, so that a
	// leaked key can be revoked by retiring it in the past (before now -
	// max lifetime - skew). Retiring the active key leaves none: Sign then
	// fails until another key is activated. Unknown id is ENotFound.
	Retire(ctx context.Context, id string, at time.Time) error
}

// GenerateKey returns a new pending key with a fresh Ed25519 key pair from
// crypto/rand.
func GenerateKey(id string, now time.Time) (Key, error) {
	if !validID(id) {
		return Key{}, softatm.Errorf(softatm.EInvalid, "key id %q: want 1..8 characters A-Z 0-9", id)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generating key: %w", err)
	}
	return Key{ID: id, Public: pub, Private: priv, State: StatePending, CreatedAt: now.UTC()}, nil
}

// Rotate generates a key with the given id, stores it and activates it: the
// previous active key is retired at now. It is what `softatm keys rotate`
// does; generate / activate / retire are the KeyStore methods themselves.
func Rotate(ctx context.Context, store KeyStore, id string, now time.Time) (Key, error) {
	k, err := GenerateKey(id, now)
	if err != nil {
		return Key{}, err
	}
	if err := store.Create(ctx, k); err != nil {
		return Key{}, err
	}
	if err := store.Activate(ctx, id, now); err != nil {
		return Key{}, err
	}
	k.State, k.ActivatedAt = StateActive, now.UTC()
	return k, nil
}

// MemKeyStore is a KeyStore in memory, with the same rules as PGKeyStore.
// It is for tests and demos; it forgets everything on exit.
type MemKeyStore struct {
	mu   sync.Mutex
	keys []Key
}

// NewMemKeyStore returns an empty in-memory key store.
func NewMemKeyStore() *MemKeyStore { return &MemKeyStore{} }

// Keys implements KeyStore.
func (s *MemKeyStore) Keys(context.Context) ([]Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, len(s.keys))
	copy(out, s.keys)
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Create implements KeyStore.
func (s *MemKeyStore) Create(_ context.Context, k Key) error {
	if err := checkNew(k); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.keys {
		if o.ID == k.ID {
			return softatm.Errorf(softatm.EConflict, "key %s already exists", k.ID)
		}
	}
	k.CreatedAt = k.CreatedAt.UTC()
	s.keys = append(s.keys, k)
	return nil
}

// Activate implements KeyStore.
func (s *MemKeyStore) Activate(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(id)
	if i < 0 {
		return softatm.Errorf(softatm.ENotFound, "key %s not found", id)
	}
	switch s.keys[i].State {
	case StateActive:
		return nil
	case StateRetired:
		return softatm.Errorf(softatm.EConflict, "key %s is retired", id)
	}
	for j := range s.keys {
		if s.keys[j].State == StateActive {
			s.keys[j].State, s.keys[j].RetiredAt = StateRetired, at.UTC()
		}
	}
	s.keys[i].State, s.keys[i].ActivatedAt = StateActive, at.UTC()
	return nil
}

// Retire implements KeyStore.
func (s *MemKeyStore) Retire(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(id)
	if i < 0 {
		return softatm.Errorf(softatm.ENotFound, "key %s not found", id)
	}
	k := &s.keys[i]
	if k.State == StateRetired && !at.Before(k.RetiredAt) {
		return nil
	}
	k.State, k.RetiredAt = StateRetired, at.UTC()
	return nil
}

func (s *MemKeyStore) find(id string) int {
	for i, k := range s.keys {
		if k.ID == id {
			return i
		}
	}
	return -1
}

// checkNew is Create's precondition for every store.
func checkNew(k Key) error {
	if k.State != StatePending {
		return softatm.Errorf(softatm.EInvalid, "a new key must be pending, not %q", k.State)
	}
	if k.CreatedAt.IsZero() {
		return softatm.Errorf(softatm.EInvalid, "key %s has no creation time", k.ID)
	}
	if err := k.check(); err != nil {
		return softatm.Wrap(softatm.EInvalid, "the key is not valid", err)
	}
	return nil
}
