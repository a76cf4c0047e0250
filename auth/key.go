// Package auth holds sluice's principals: API keys with scopes and an
// expiry, the store that commits them, and the checks every listener makes
// (HTTP bearer keys here; Postgres and Kafka use the same keys through
// SCRAM-SHA-256, see SCRAM).
//
// A key is a random secret shown once, when it is created. The store keeps
// only its SHA-256 (for HTTP) and its SCRAM salted password (for the SCRAM
// listeners, which cannot work from a plain hash): whoever reads the object
// store can therefore log in over SCRAM, but can already read every table
// and change the registry there, so nothing is lost. A key's ID is the first
// 16 hex digits of its hash: not secret, it names the key in listings, logs
// and as the user name of the SCRAM listeners.
package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Key is one API key as the store keeps it: what the API shows of it, and
// its credentials (never the secret itself).
type Key struct {
	KeyInfo
	Hash  string `json:"hash"` // hex SHA-256 of the secret
	SCRAM SCRAM  `json:"scram"`
}

// KeyInfo is a key as the API shows it: never its secret or hashes.
type KeyInfo struct {
	ID      string     `json:"id"`
	Name    string     `json:"name,omitempty"`
	Scopes  []string   `json:"scopes"`
	Expires *time.Time `json:"expires,omitempty"`
	Created time.Time  `json:"created"`
	Limits  Limits     `json:"limits,omitzero"`
}

// SCRAM is a key's SCRAM-SHA-256 credential (RFC 5802, RFC 7677).
type SCRAM struct {
	Salt           []byte `json:"salt"`
	Iterations     int    `json:"iterations"`
	SaltedPassword []byte `json:"salted_password"`
}

// SCRAMIterations is the PBKDF2 iteration count of new credentials (the
// RFC 7677 minimum, what Postgres and Kafka use by default).
const SCRAMIterations = 4096

// StoredKey and ServerKey are the SCRAM server's verifiers.
func (s SCRAM) StoredKey() []byte {
	ck := hmacSHA256(s.SaltedPassword, []byte("Client Key"))
	sum := sha256.Sum256(ck)
	return sum[:]
}

func (s SCRAM) ServerKey() []byte { return hmacSHA256(s.SaltedPassword, []byte("Server Key")) }

// Verify checks a SCRAM client proof over authMessage and returns the server
// signature to send back.
func (s SCRAM) Verify(authMessage, proof []byte) (serverSignature []byte, ok bool) {
	stored := s.StoredKey()
	sig := hmacSHA256(stored, authMessage)
	if len(proof) != len(sig) {
		return nil, false
	}
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = proof[i] ^ sig[i]
	}
	sum := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(sum[:], stored) != 1 {
		return nil, false
	}
	return hmacSHA256(s.ServerKey(), authMessage), true
}

func hmacSHA256(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// MinSecretLen is the shortest secret accepted (SLUICE_ADMIN_KEY included).
const MinSecretLen = 20

// NewSecret returns a fresh random key: "sluice_" and 43 base64url
// characters (256 bits).
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "sluice_" + base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret returns the hex SHA-256 of secret, and the key ID it gives.
func hashSecret(secret string) (hash, id string) {
	sum := sha256.Sum256([]byte(secret))
	hash = hex.EncodeToString(sum[:])
	return hash, hash[:16]
}

// IDOf returns the ID of the key whose secret is secret.
func IDOf(secret string) string { _, id := hashSecret(secret); return id }

// newKey builds the stored record of secret.
func newKey(secret, name string, scopes []string, expires *time.Time, now time.Time) (Key, error) {
	if len(secret) < MinSecretLen {
		return Key{}, fmt.Errorf("%w: a key must be at least %d characters", ErrInvalid, MinSecretLen)
	}
	if len(scopes) == 0 {
		return Key{}, fmt.Errorf("%w: give a key at least one scope (admin, ingest:STREAM, query:TABLE; * for every one)", ErrInvalid)
	}
	for _, s := range scopes {
		if _, err := ParseScope(s); err != nil {
			return Key{}, err
		}
	}
	if expires != nil && !expires.After(now) {
		return Key{}, fmt.Errorf("%w: expiry %s is not in the future", ErrInvalid, expires.Format(time.RFC3339))
	}
	hash, id := hashSecret(secret)
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, secret, salt, SCRAMIterations, sha256.Size)
	if err != nil {
		return Key{}, err
	}
	return Key{
		KeyInfo: KeyInfo{ID: id, Name: name, Scopes: slices.Clone(scopes), Expires: expires, Created: now.UTC()},
		Hash:    hash,
		SCRAM:   SCRAM{Salt: salt, Iterations: SCRAMIterations, SaltedPassword: salted},
	}, nil
}

// matches reports whether secret is this key's.
func (k Key) matches(secret string) bool {
	hash, _ := hashSecret(secret)
	return subtle.ConstantTimeCompare([]byte(hash), []byte(k.Hash)) == 1
}

// Expired reports whether the key has expired at now.
func (k Key) Expired(now time.Time) bool { return k.Expires != nil && !now.Before(*k.Expires) }

// Principal is who made a request: the key's ID and what it may do.
type Principal struct {
	KeyID  string
	scopes []Scope
	plan   *plan // the key's usage plan on this process (nil: none)
}

// Admin is the principal of a server running with authentication off.
var Admin = &Principal{KeyID: "(auth off)", scopes: []Scope{{Kind: "admin"}}}

// principal returns the principal of k.
func (k Key) principal() *Principal {
	p := &Principal{KeyID: k.ID}
	for _, s := range k.Scopes {
		if sc, err := ParseScope(s); err == nil {
			p.scopes = append(p.scopes, sc)
		}
	}
	return p
}

// Scope is one grant: admin, metrics (read GET /metrics, nothing else),
// or ingest/query on one name or on every one.
type Scope struct {
	Kind string // admin, metrics, ingest, query
	Name string // a stream or table name, or *; "" for admin and metrics
}

// ParseScope parses "admin", "metrics", "ingest:NAME", "query:NAME" (NAME
// may be *).
func ParseScope(s string) (Scope, error) {
	kind, name, hasName := strings.Cut(s, ":")
	switch {
	case (kind == "admin" || kind == "metrics") && !hasName:
		return Scope{Kind: kind}, nil
	case (kind == "ingest" || kind == "query") && name != "":
		return Scope{Kind: kind, Name: name}, nil
	}
	return Scope{}, fmt.Errorf("%w: scope %q: want admin, metrics, ingest:STREAM or query:TABLE (* for every stream or table)", ErrInvalid, s)
}

func (s Scope) String() string {
	if s.Name == "" {
		return s.Kind
	}
	return s.Kind + ":" + s.Name
}

// Can reports whether p may do kind (admin, ingest, query) on name (a
// stream or table; "" asks for any one of them). admin may do everything.
func (p *Principal) Can(kind, name string) bool {
	if p == nil {
		return false
	}
	for _, s := range p.scopes {
		if s.Kind == "admin" || s.Kind == kind && (s.Name == "*" || name == "" || sameName(kind, s.Name, name)) {
			return true
		}
	}
	return false
}

// sameName compares object names as their systems do: streams (Kafka
// topics) exactly, tables (DuckDB identifiers) without case.
func sameName(kind, a, b string) bool {
	if kind == "query" {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// Everything reports whether p may do kind on every object (ingest:* or
// query:*, or admin): such a principal is not limited to named objects.
func (p *Principal) Everything(kind string) bool {
	if p == nil {
		return false
	}
	for _, s := range p.scopes {
		if s.Kind == "admin" || s.Kind == kind && s.Name == "*" {
			return true
		}
	}
	return false
}

// Scopes lists p's grants.
func (p *Principal) Scopes() []string {
	var out []string
	for _, s := range p.scopes {
		out = append(out, s.String())
	}
	return out
}

// Errors the store and the checks return (wrapped).
var (
	ErrInvalid   = errors.New("invalid")
	ErrNotFound  = errors.New("no such key")
	ErrNoKey     = errors.New("no API key given")
	ErrBadKey    = errors.New("unknown, revoked or expired API key")
	ErrForbidden = errors.New("the API key does not allow this")
)

// principalWith returns k's principal charging pl.
func (k Key) principalWith(pl *plan) *Principal {
	p := k.principal()
	p.plan = pl
	return p
}

// NewPrincipal returns the principal of a key with scopes (invalid scopes
// grant nothing).
func NewPrincipal(keyID string, scopes ...string) *Principal {
	return Key{KeyInfo: KeyInfo{ID: keyID, Scopes: scopes}}.principal()
}
