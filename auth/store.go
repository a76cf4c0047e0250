package auth

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// StoreKey is the object holding every key: one object, changed only by
// conditional writes, so two API processes creating or revoking keys at
// once cannot lose each other's change.
const StoreKey = "_sluice/keys.json"

// RefreshInterval is how often a Store reads the keys object again (Run):
// a key revoked on one node is refused by the others within about this
// long. A key created elsewhere is found within MissInterval (a lookup
// miss reads the object again, at most once per MissInterval, so that
// unknown keys cannot turn every request into a read of the store).
const (
	RefreshInterval = 2 * time.Second
	MissInterval    = time.Second
)

type keysFile struct {
	Keys []Key `json:"keys"`
}

// Store is the set of keys, committed in the object store. Lookups are
// served from memory.
type Store struct {
	bucket objstore.Bucket
	cas    objstore.Versioned
	now    func() time.Time

	mu       sync.RWMutex
	keys     map[string]Key   // by ID
	plans    map[string]*plan // by key ID, for keys with limits; replaced when they change
	lastMiss time.Time
	changed  []func([]Key) // called after each change seen, with every key
}

// Open reads the keys of bucket (whose backend must write conditionally).
func Open(ctx context.Context, bucket objstore.Bucket) (*Store, error) {
	cas, ok := bucket.(objstore.Versioned)
	if !ok {
		return nil, fmt.Errorf("cannot keep API keys in %T: it has no conditional writes", bucket)
	}
	s := &Store{bucket: bucket, cas: cas, now: time.Now, keys: map[string]Key{}}
	if _, _, err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// OnChange registers fn, called with every key after each change the store
// sees (its own or another node's), and once now.
func (s *Store) OnChange(fn func([]Key)) {
	s.mu.Lock()
	s.changed = append(s.changed, fn)
	keys := s.listLocked()
	s.mu.Unlock()
	fn(keys)
}

// load reads the keys object and makes it the store's view.
func (s *Store) load(ctx context.Context) (keysFile, string, error) {
	var f keysFile
	data, version, err := s.cas.GetVersion(ctx, StoreKey)
	switch {
	case objstore.IsNotFound(err):
		version = ""
	case err != nil:
		return f, "", fmt.Errorf("cannot read API keys %q: %w", StoreKey, err)
	default:
		if err := json.Unmarshal(data, &f); err != nil {
			return f, "", fmt.Errorf("cannot decode API keys %q (restore it from a backup, or delete it and set SLUICE_ADMIN_KEY to start over): %w", StoreKey, err)
		}
	}
	keys := make(map[string]Key, len(f.Keys))
	for _, k := range f.Keys {
		keys[k.ID] = k
	}
	s.mu.Lock()
	same := sameKeys(s.keys, keys)
	s.keys = keys
	plans := map[string]*plan{}
	for id, k := range keys {
		if k.Limits != (Limits{}) {
			if old := s.plans[id]; old != nil && old.limits == k.Limits {
				plans[id] = old
			} else {
				plans[id] = newPlan(k.Limits, s.now())
			}
		}
	}
	s.plans = plans
	var notify []func([]Key)
	if !same {
		notify = slices.Clone(s.changed)
	}
	list := s.listLocked()
	s.mu.Unlock()
	for _, fn := range notify {
		fn(list)
	}
	return f, version, nil
}

func sameKeys(a, b map[string]Key) bool {
	if len(a) != len(b) {
		return false
	}
	for id, k := range a {
		o, ok := b[id]
		if !ok || o.Hash != k.Hash || !slices.Equal(o.Scopes, k.Scopes) || !timeOr(o.Expires).Equal(timeOr(k.Expires)) || o.Limits != k.Limits {
			return false
		}
	}
	return true
}

func timeOr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// Run reads the keys again every RefreshInterval until ctx ends.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.load(ctx) // a failed read keeps the last view; the next tick tries again
		}
	}
}

// update applies change to the committed keys with a conditional write,
// reading again and retrying when another node wrote meanwhile.
func (s *Store) update(ctx context.Context, change func(*keysFile) error) error {
	for attempt := 0; ; attempt++ {
		f, version, err := s.load(ctx)
		if err != nil {
			return err
		}
		if err := change(&f); err != nil {
			return err
		}
		data, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return err
		}
		_, err = s.cas.PutIfVersion(ctx, StoreKey, data, version)
		if objstore.IsConflict(err) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("cannot write API keys %q: %w", StoreKey, err)
		}
		_, _, err = s.load(ctx)
		return err
	}
}

// Create stores a key for secret (NewSecret's, or an operator's own of at
// least MinSecretLen characters) and returns its record. A secret that is
// already a key is an error.
func (s *Store) Create(ctx context.Context, secret, name string, scopes []string, expires *time.Time, limits ...Limits) (Key, error) {
	k, err := newKey(secret, name, scopes, expires, s.now())
	if err != nil {
		return Key{}, err
	}
	for _, l := range limits {
		if err := l.validate(); err != nil {
			return Key{}, err
		}
		k.Limits = l
	}
	err = s.update(ctx, func(f *keysFile) error {
		if slices.ContainsFunc(f.Keys, func(o Key) bool { return o.ID == k.ID }) {
			return fmt.Errorf("%w: key %s exists", ErrInvalid, k.ID)
		}
		f.Keys = append(f.Keys, k)
		return nil
	})
	return k, err
}

// Revoke deletes key id.
func (s *Store) Revoke(ctx context.Context, id string) error {
	return s.update(ctx, func(f *keysFile) error {
		n := len(f.Keys)
		f.Keys = slices.DeleteFunc(f.Keys, func(k Key) bool { return k.ID == id })
		if len(f.Keys) == n {
			return fmt.Errorf("cannot revoke key %q: %w", id, ErrNotFound)
		}
		return nil
	})
}

// List returns every key, by creation time.
func (s *Store) List() []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.listLocked()
}

func (s *Store) listLocked() []Key {
	out := make([]Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// Empty reports whether there is no key at all.
func (s *Store) Empty() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys) == 0
}

// ByID returns an unexpired key (for the SCRAM listeners, whose user name
// is the key's ID).
func (s *Store) ByID(ctx context.Context, id string) (Key, *Principal, error) {
	k, ok := s.get(ctx, id)
	if !ok || k.Expired(s.now()) {
		return Key{}, nil, ErrBadKey
	}
	return k, k.principalWith(s.plan(id)), nil
}

func (s *Store) plan(id string) *plan {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.plans[id]
}

// SetLimits replaces key id's usage plan.
func (s *Store) SetLimits(ctx context.Context, id string, l Limits) (Key, error) {
	if err := l.validate(); err != nil {
		return Key{}, err
	}
	var out Key
	err := s.update(ctx, func(f *keysFile) error {
		for i := range f.Keys {
			if f.Keys[i].ID == id {
				f.Keys[i].Limits = l
				out = f.Keys[i]
				return nil
			}
		}
		return fmt.Errorf("cannot change the limits of key %q: %w", id, ErrNotFound)
	})
	return out, err
}

// Authenticate returns the principal of secret.
func (s *Store) Authenticate(ctx context.Context, secret string) (*Principal, error) {
	if secret == "" {
		return nil, ErrNoKey
	}
	k, ok := s.get(ctx, IDOf(secret))
	if !ok || !k.matches(secret) || k.Expired(s.now()) {
		return nil, ErrBadKey
	}
	return k.principalWith(s.plan(k.ID)), nil
}

// get finds key id, reading the store again on a miss (at most once per
// MissInterval, so that unknown keys cannot make every request a read).
func (s *Store) get(ctx context.Context, id string) (Key, bool) {
	s.mu.Lock()
	k, ok := s.keys[id]
	reload := !ok && s.now().Sub(s.lastMiss) >= MissInterval
	if reload {
		s.lastMiss = s.now()
	}
	s.mu.Unlock()
	if ok || !reload {
		return k, ok
	}
	if _, _, err := s.load(ctx); err != nil {
		return Key{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok = s.keys[id]
	return k, ok
}

// AdminKeyFile is where Bootstrap writes a new admin key, in the data
// directory; the CLI reads it from there.
const AdminKeyFile = "admin.key"

// Bootstrap makes sure an admin key exists. With envKey (SLUICE_ADMIN_KEY)
// set, that key is added as an admin key unless it is one already.
// Otherwise, if the store has no key at all, a new admin key is created and
// written to dataDir/admin.key (mode 0600); its secret is returned, for the
// server to print once. Two processes bootstrapping one store at once
// create one key between them (the creation is a conditional write that
// requires the store to be empty).
func (s *Store) Bootstrap(ctx context.Context, dataDir, envKey string) (created string, err error) {
	if envKey != "" {
		if k, ok := s.get(ctx, IDOf(envKey)); ok && k.matches(envKey) {
			if !slices.Contains(k.Scopes, "admin") {
				return "", fmt.Errorf("cannot use SLUICE_ADMIN_KEY: it is key %s, whose scopes %v lack admin", k.ID, k.Scopes)
			}
			return "", nil
		}
		_, err := s.Create(ctx, envKey, "SLUICE_ADMIN_KEY", []string{"admin"}, nil)
		return "", err
	}
	secret := NewSecret()
	k, err := newKey(secret, "bootstrap admin", []string{"admin"}, nil, s.now())
	if err != nil {
		return "", err
	}
	made := false
	err = s.update(ctx, func(f *keysFile) error {
		made = len(f.Keys) == 0
		if made {
			f.Keys = append(f.Keys, k)
		}
		return nil
	})
	if err != nil || !made {
		return "", err
	}
	path := filepath.Join(dataDir, AdminKeyFile)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", fmt.Errorf("cannot write the admin key to %q: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		return "", fmt.Errorf("cannot write the admin key to %q: %w", path, err)
	}
	return secret, nil
}
