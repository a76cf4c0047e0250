package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

func newStore(t *testing.T) (*Store, objstore.Bucket) {
	t.Helper()
	b := &objstore.Dir{Root: t.TempDir()}
	s, err := Open(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

func TestKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	s, b := newStore(t)
	secret := NewSecret()
	k, err := s.Create(ctx, secret, "clicks producer", []string{"ingest:clicks"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != IDOf(secret) || strings.Contains(string(must(b.Get(ctx, StoreKey))), secret) {
		t.Fatalf("the store must hold the key's hash only")
	}
	p, err := s.Authenticate(ctx, secret)
	if err != nil || !p.Can("ingest", "clicks") || p.Can("ingest", "logs") || p.Can("query", "clicks") || p.Can("admin", "") {
		t.Fatalf("principal %+v, %v", p, err)
	}
	if _, err := s.Authenticate(ctx, secret+"x"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("a wrong key: %v", err)
	}
	// Another node's store sees the key at once (a miss reads again).
	other, err := Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	second := NewSecret()
	if _, err := other.Create(ctx, second, "", []string{"query:*"}, nil); err != nil {
		t.Fatal(err)
	}
	s.lastMiss = time.Time{} // the wrong key above was a miss less than MissInterval ago
	if p, err := s.Authenticate(ctx, second); err != nil || !p.Can("query", "anything") {
		t.Fatalf("a key created on another node: %v", err)
	}
	if err := other.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	s.load(ctx) // what Run does every RefreshInterval
	if _, err := s.Authenticate(ctx, secret); !errors.Is(err, ErrBadKey) {
		t.Fatalf("a revoked key: %v", err)
	}
	if err := s.Revoke(ctx, k.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
}

func TestKeyValidationAndExpiry(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, scopes := range [][]string{nil, {"admin:x"}, {"ingest"}, {"ingest:"}, {"read:logs"}, {"metrics:x"}} {
		if _, err := s.Create(ctx, NewSecret(), "", scopes, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("scopes %q: %v", scopes, err)
		}
	}
	if _, err := s.Create(ctx, "short", "", []string{"admin"}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("a short secret: %v", err)
	}
	past := time.Now().Add(-time.Minute)
	if _, err := s.Create(ctx, NewSecret(), "", []string{"admin"}, &past); !errors.Is(err, ErrInvalid) {
		t.Errorf("an expiry in the past: %v", err)
	}
	soon := time.Now().Add(time.Hour)
	secret := NewSecret()
	if _, err := s.Create(ctx, secret, "", []string{"admin"}, &soon); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return soon }
	if _, err := s.Authenticate(ctx, secret); !errors.Is(err, ErrBadKey) {
		t.Fatalf("an expired key: %v", err)
	}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	s, b := newStore(t)
	dir := t.TempDir()
	secret, err := s.Bootstrap(ctx, dir, "")
	if err != nil || secret == "" {
		t.Fatalf("first start: %q, %v", secret, err)
	}
	fi, err := os.Stat(filepath.Join(dir, AdminKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.key: %v %v", fi, err)
	}
	if p, err := s.Authenticate(ctx, secret); err != nil || !p.Can("admin", "") {
		t.Fatalf("the bootstrap key: %v", err)
	}
	// A second process on the same store creates no second key.
	other, _ := Open(ctx, b)
	if again, err := other.Bootstrap(ctx, t.TempDir(), ""); err != nil || again != "" || len(other.List()) != 1 {
		t.Fatalf("second bootstrap: %q, %v, %d keys", again, err, len(other.List()))
	}
	env := "operator-chosen-admin-key-0123456789"
	if _, err := s.Bootstrap(ctx, dir, env); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bootstrap(ctx, dir, env); err != nil || len(s.List()) != 2 {
		t.Fatalf("SLUICE_ADMIN_KEY twice: %v, %d keys", err, len(s.List()))
	}
}

func TestSCRAMVerify(t *testing.T) {
	k, err := newKey(NewSecret(), "", []string{"query:*"}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("n=,r=abc,r=abcdef,s=c2FsdA==,i=4096,c=biws,r=abcdef")
	// The client's proof: ClientKey XOR HMAC(StoredKey, AuthMessage).
	ck := hmacSHA256(k.SCRAM.SaltedPassword, []byte("Client Key"))
	sig := hmacSHA256(k.SCRAM.StoredKey(), msg)
	proof := make([]byte, len(ck))
	for i := range ck {
		proof[i] = ck[i] ^ sig[i]
	}
	if _, ok := k.SCRAM.Verify(msg, proof); !ok {
		t.Fatal("a right proof was refused")
	}
	proof[0] ^= 1
	if _, ok := k.SCRAM.Verify(msg, proof); ok {
		t.Fatal("a wrong proof was accepted")
	}
}

func TestGuard(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ingest := NewSecret()
	s.Create(ctx, ingest, "", []string{"ingest:clicks"}, nil)
	g := &Guard{Store: s}
	h := g.Require("ingest", func(r *http.Request) string { return r.URL.Query().Get("stream") },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if FromContext(r.Context()) == nil {
				t.Error("no principal in the context")
			}
			w.WriteHeader(204)
		}))
	for _, c := range []struct {
		key, stream string
		want        int
	}{{"", "clicks", 401}, {"wrong-key-wrong-key-wrong", "clicks", 401}, {ingest, "logs", 403}, {ingest, "clicks", 204}} {
		r := httptest.NewRequest("POST", "/?stream="+c.stream, nil)
		if c.key != "" {
			r.Header.Set("Authorization", "Bearer "+c.key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("key %q stream %s: %d %s, want %d", c.key, c.stream, w.Code, w.Body, c.want)
		}
	}
}

// TestMetricsScope: a metrics key may read what Require("metrics") guards
// and nothing else; admin may read it too.
func TestMetricsScope(t *testing.T) {
	if sc, err := ParseScope("metrics"); err != nil || sc.String() != "metrics" {
		t.Fatalf("ParseScope(metrics) = %v, %v", sc, err)
	}
	m := NewPrincipal("m", "metrics")
	if !m.Can("metrics", "") || m.Can("admin", "") || m.Can("query", "logs") || m.Can("ingest", "logs") || m.Everything("query") {
		t.Fatalf("a metrics key: %v", m.Scopes())
	}
	if !NewPrincipal("a", "admin").Can("metrics", "") || NewPrincipal("q", "query:*").Can("metrics", "") {
		t.Fatal("metrics must be readable by admin, and not by query:*")
	}
}

func TestProtect(t *testing.T) {
	h := Protect(LocalHosts("127.0.0.1:8080"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	for _, c := range []struct {
		name, method, host, ctype, site string
		want                            int
	}{
		{"loopback JSON", "POST", "127.0.0.1:8080", "application/json", "", 204},
		{"localhost NDJSON", "POST", "localhost:8080", "application/x-ndjson", "", 204},
		{"DNS rebinding", "GET", "evil.example", "", "", 421},
		{"text/plain post", "POST", "127.0.0.1:8080", "text/plain", "", 415},
		{"text/plain post with a key", "POST", "127.0.0.1:8080", "text/plain;authorized", "", 204},
		{"form post", "POST", "127.0.0.1:8080", "application/x-www-form-urlencoded", "", 415},
		{"cross-site JSON", "POST", "127.0.0.1:8080", "application/json", "cross-site", 403},
		{"cross-site GET", "GET", "127.0.0.1:8080", "", "cross-site", 204},
	} {
		r := httptest.NewRequest(c.method, "/v1/x", strings.NewReader("{}"))
		r.Host = c.host
		if ct, authorized := strings.CutSuffix(c.ctype, ";authorized"); authorized {
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Authorization", "Bearer x")
		} else if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.want)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestUsagePlan: a request within the plan goes (one larger than a
// second's worth too, once), the next waits until the debt is paid, and a
// refusal says how long.
func TestUsagePlan(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	secret := NewSecret()
	k, err := s.Create(ctx, secret, "", []string{"ingest:*", "query:*"}, nil, Limits{IngestBytesPerSec: 1000, QueriesPerMinute: 60})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Authenticate(ctx, secret)
	if err := p.AllowIngest(5000); err != nil {
		t.Fatalf("the first request, over a second's worth: %v", err)
	}
	err = p.AllowIngest(10)
	var rl *RateLimited
	if !errors.As(err, &rl) || rl.RetryAfter < 3*time.Second || rl.RetryAfter > 5*time.Second {
		t.Fatalf("the next request: %v, want a wait of about 4 s", err)
	}
	if err := p.AllowQuery(); err != nil {
		t.Fatal(err)
	}
	if err := p.AllowQuery(); !errors.As(err, &rl) {
		t.Fatalf("a second query within the second: %v", err)
	}
	// The plan is per key: another principal of the same key shares it;
	// new limits start a new plan.
	p2, _ := s.Authenticate(ctx, secret)
	if err := p2.AllowIngest(1); err == nil {
		t.Fatal("a second principal of the key has its own plan")
	}
	if _, err := s.SetLimits(ctx, k.ID, Limits{}); err != nil {
		t.Fatal(err)
	}
	p3, _ := s.Authenticate(ctx, secret)
	if err := p3.AllowIngest(1 << 30); err != nil {
		t.Fatalf("without limits: %v", err)
	}
	if _, err := s.SetLimits(ctx, k.ID, Limits{QueriesPerMinute: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative limits: %v", err)
	}
}

// TestUsagePlanStreamedBody: a body of unknown length is charged as it is
// read; past the plan the read fails with *RateLimited (the ingest
// handler then refuses the request whole).
func TestUsagePlanStreamedBody(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	secret := NewSecret()
	s.Create(ctx, secret, "", []string{"ingest:*"}, nil, Limits{IngestBytesPerSec: 1000})
	g := &Guard{Store: s}
	var readErr error
	h := g.Require("ingest", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
	}))
	send := func(n int) int {
		readErr = nil
		r := httptest.NewRequest("POST", "/", io.NopCloser(strings.NewReader(strings.Repeat("x", n))))
		r.ContentLength = -1 // chunked
		r.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := send(5000); code != 200 || readErr != nil { // the bucket was full: this one goes, into debt
		t.Fatalf("the first streamed body: %d %v", code, readErr)
	}
	if code := send(10); code != 429 { // in debt: refused before its body is read
		t.Fatalf("a request while in debt: %d", code)
	}
	// Once some of the debt is paid but not all of a second's worth, a
	// body read past what the bucket holds fails mid-read.
	s.plan(IDOf(secret)).bytes.tokens = 500
	send(5000)
	var rl *RateLimited
	if !errors.As(readErr, &rl) || rl.RetryAfterSeconds() < 1 {
		t.Fatalf("a streamed body past the plan: %v", readErr)
	}
}
