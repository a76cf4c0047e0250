package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/sluice-dev/sluice/internal/s3test"
)

// newTestS3 returns an S3 on srv's fresh bucket; edit changes the config.
func newTestS3(t testing.TB, srv *s3test.Server, edit func(*S3Config)) *S3 {
	t.Helper()
	cfg := S3Config{
		Endpoint:   srv.Endpoint,
		Region:     s3test.Region,
		Bucket:     srv.Bucket,
		Addressing: AddressPath,
		Insecure:   !srv.Secure,
		AccessKey:  srv.AccessKey,
		SecretKey:  srv.SecretKey,
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Acceptance(t *testing.T) {
	srv := s3test.StartServer(t)
	b := newTestS3(t, srv, nil)
	AcceptanceTest(t, b)
	VersionedAcceptanceTest(t, b)
}

func TestS3AcceptanceWithPrefix(t *testing.T) {
	srv := s3test.StartServer(t)
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Objects beside the prefix must stay invisible, and untouched.
	for _, k := range []string{"other", "deploy/prodx", "deploy/a"} {
		if _, err := c.PutObject(ctx, srv.Bucket, k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := newTestS3(t, srv, func(c *S3Config) { c.Prefix = "/deploy/prod/" })
	AcceptanceTest(t, s)
	if _, err := c.StatObject(ctx, srv.Bucket, "deploy/prod/a/c", minio.StatObjectOptions{}); err != nil {
		t.Errorf("key a/c is not stored under the prefix: %v", err)
	}
	if _, err := c.StatObject(ctx, srv.Bucket, "deploy/prodx", minio.StatObjectOptions{}); err != nil {
		t.Errorf("an object beside the prefix went away: %v", err)
	}
}

func TestS3Multipart(t *testing.T) {
	srv := s3test.StartServer(t)
	s := newTestS3(t, srv, func(c *S3Config) { c.PartSize = MinPartSize })
	ctx := t.Context()
	data := make([]byte, 16<<20+123) // 4 parts of 5 MiB: 3 full, one of 1 MiB + 123 bytes
	rand.Read(data)
	if err := s.Put(ctx, "big/object", data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "big/object")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes, not the %d put", len(got), len(data))
	}
	if n, err := s.Stat(ctx, "big/object"); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat: %d, %v", n, err)
	}
	// A multipart object's ETag is "<md5 of the part md5s>-<parts>".
	c, _ := srv.Client()
	info, err := c.StatObject(ctx, srv.Bucket, "big/object", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ETag, "-4") {
		t.Errorf("ETag %q: want a 4-part multipart upload", info.ETag)
	}
	// Replacing it with a small object is one PUT, and atomic too.
	if err := s.Put(ctx, "big/object", []byte("small")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "big/object"); err != nil || string(got) != "small" {
		t.Fatalf("after replace: %q, %v", got, err)
	}
	// No incomplete upload is left behind.
	for u := range c.ListIncompleteUploads(ctx, srv.Bucket, "", true) {
		t.Errorf("incomplete upload left: %+v", u)
	}
}

func TestS3NotFound(t *testing.T) {
	srv := s3test.StartServer(t)
	s := newTestS3(t, srv, nil)
	ctx := t.Context()
	if err := s.Put(ctx, "dir/file", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"missing", "dir", "dir/file/below", "dir/fil"} {
		_, err := s.Get(ctx, key)
		if !IsNotFound(err) || IsRetryable(err) {
			t.Errorf("Get(%q): want ErrNotFound, not retryable; got %v", key, err)
		}
		_, err = s.Stat(ctx, key)
		if !IsNotFound(err) || IsRetryable(err) {
			t.Errorf("Stat(%q): want ErrNotFound, not retryable; got %v", key, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q): %v", key, err)
		}
	}
	if _, err := s.Get(ctx, "dir/file"); err != nil {
		t.Errorf("the deletes of missing keys removed dir/file: %v", err)
	}
}

func TestS3MissingBucket(t *testing.T) {
	srv := s3test.StartServer(t)
	start := time.Now()
	ctx := t.Context()
	cfg := S3Config{Endpoint: srv.Endpoint, Region: s3test.Region, Bucket: "sluice-no-such-bucket",
		Addressing: AddressPath, Insecure: !srv.Secure, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	_, err := NewS3(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "create=true") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("NewS3 of a missing bucket: %v", err)
	}
	if time.Since(start) > 20*time.Second { // retrying would take the 30 s budget
		t.Errorf("a missing bucket was retried: %s", time.Since(start))
	}
	cfg.Bucket = "sluice-created-" + fmt.Sprint(time.Now().UnixNano())
	cfg.Create = true
	s, err := NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, _ := srv.Client()
		c.RemoveObject(context.Background(), cfg.Bucket, "k", minio.RemoveObjectOptions{})
		c.RemoveBucket(context.Background(), cfg.Bucket)
	})
	if err := s.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := NewS3(ctx, cfg); err != nil { // exists now: create=true is a no-op
		t.Fatal(err)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	srv := s3test.StartServer(t)
	cfg := S3Config{Endpoint: srv.Endpoint, Region: s3test.Region, Bucket: srv.Bucket,
		Addressing: AddressPath, Insecure: !srv.Secure, AccessKey: srv.AccessKey, SecretKey: "wrong"}
	start := time.Now()
	_, err := NewS3(t.Context(), cfg)
	if err == nil || IsRetryable(err) {
		t.Fatalf("NewS3 with a wrong secret: want a permanent error, got %v", err)
	}
	if time.Since(start) > 20*time.Second { // retrying would take the 30 s budget
		t.Errorf("a wrong secret was retried: %s", time.Since(start))
	}
}

func TestOpenS3(t *testing.T) {
	srv := s3test.StartServer(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	b, err := Open(t.Context(), srv.URL(srv.Bucket)+"&retry_budget=5s")
	if err != nil {
		t.Fatal(err)
	}
	s, ok := b.(*S3)
	if !ok {
		t.Fatalf("Open returned a %T", b)
	}
	if s.retry.budget != 5*time.Second || s.partSize != DefaultPartSize {
		t.Errorf("budget %s, part size %d", s.retry.budget, s.partSize)
	}
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// TestS3RetryServerDown kills the server: a Put retries for its budget and
// fails with a retryable error; a Put that starts while the server is down and
// outlasts the restart succeeds; after the restart the data is all there.
func TestS3RetryServerDown(t *testing.T) {
	srv := s3test.StartServer(t)
	s := newTestS3(t, srv, func(c *S3Config) { c.RetryBudget = 2 * time.Second })
	ctx := t.Context()
	if err := s.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	start := time.Now()
	err := s.Put(ctx, "during", []byte("2"))
	took := time.Since(start)
	if err == nil {
		t.Fatal("Put succeeded with the server down")
	}
	t.Logf("Put with the server down: %s: %v", took.Round(time.Millisecond), err)
	if !IsRetryable(err) {
		t.Errorf("IsRetryable = false for %v", err)
	}
	if !strings.Contains(err.Error(), "gave up after") {
		t.Errorf("error does not say it retried: %v", err)
	}
	if took < 2*time.Second || took > 10*time.Second {
		t.Errorf("Put gave up after %s; budget 2s", took)
	}
	short := newTestS3WithoutCheck(t, s, 300*time.Millisecond)
	for name, f := range map[string]func() error{
		"Get":    func() error { _, err := short.Get(ctx, "before"); return err },
		"Stat":   func() error { _, err := short.Stat(ctx, "before"); return err },
		"Delete": func() error { return short.Delete(ctx, "before") },
		"List":   func() error { return short.List(ctx, "", func(string) error { return nil }) },
	} {
		if err := f(); !IsRetryable(err) || IsNotFound(err) {
			t.Errorf("%s with the server down: want a retryable error, got %v", name, err)
		}
	}

	// A call with a longer budget rides out a restart.
	long := newTestS3WithoutCheck(t, s, 20*time.Second)
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- long.Put(ctx, "across-restart", []byte("3")) }()
	time.Sleep(500 * time.Millisecond)
	srv.Start() // on the test's goroutine: it may t.Fatal
	err = <-done
	if err != nil {
		t.Fatalf("Put across a restart: %v", err)
	}
	t.Logf("Put across a restart took %s", time.Since(start).Round(time.Millisecond))

	if err := s.Put(ctx, "after", []byte("4")); err != nil {
		t.Fatalf("Put after the restart: %v", err)
	}
	var keys []string
	if err := s.List(ctx, "", func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(keys); got != "[across-restart after before]" {
		t.Errorf("keys after the restart: %s", got)
	}
}

// newTestS3WithoutCheck copies s with another retry budget (NewS3 would check
// the bucket, which needs the server).
func newTestS3WithoutCheck(t *testing.T, s *S3, budget time.Duration) *S3 {
	c := *s
	c.retry.budget = budget
	return &c
}

// faultProxy forwards to srv, but answers the requests that fail() picks with
// 503 SlowDown, as S3 does under load.
func faultProxy(t *testing.T, srv *s3test.Server, fail func(r *http.Request) bool) (endpoint string, requests *atomic.Int64) {
	requests = new(atomic.Int64)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme = "http"
		pr.Out.URL.Host = srv.Endpoint
		pr.Out.Host = pr.In.Host // signed by the client
	}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if fail(r) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	u, _ := url.Parse(ts.URL)
	return u.Host, requests
}

func TestS3RetrySlowDown(t *testing.T) {
	srv := s3test.StartServer(t)
	var failing atomic.Int64 // the next n object requests fail
	endpoint, requests := faultProxy(t, srv, func(r *http.Request) bool {
		return r.URL.Path != "/"+srv.Bucket && failing.Add(-1) >= 0
	})
	s := newTestS3(t, srv, func(c *S3Config) { c.Endpoint = endpoint; c.RetryBudget = 3 * time.Second })
	ctx := t.Context()

	failing.Store(3)
	requests.Store(0)
	if err := s.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put after 3 SlowDowns: %v", err)
	}
	if n := requests.Load(); n != 4 {
		t.Errorf("%d requests for a Put that failed 3 times", n)
	}
	failing.Store(2)
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after 2 SlowDowns: %q, %v", got, err)
	}

	failing.Store(1 << 40)
	start := time.Now()
	err := s.Put(ctx, "k", []byte("v2"))
	var resp minio.ErrorResponse
	if err == nil || !IsRetryable(err) || !errors.As(err, &resp) || resp.Code != "SlowDown" {
		t.Fatalf("Put under endless SlowDown: want a retryable SlowDown, got %v", err)
	}
	if took := time.Since(start); took < 3*time.Second || took > 8*time.Second {
		t.Errorf("gave up after %s; budget 3s", took)
	}

	// The caller's context ends the retrying at once.
	ctx2, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := s.Put(ctx2, "k", []byte("v3")); err == nil {
		t.Fatal("Put succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Put ran %s past a 300ms context", took)
	}
}

// TestS3ListResumes fails a page of a listing: the retried listing starts
// after the last key yielded, so no key is yielded twice or skipped.
func TestS3ListResumes(t *testing.T) {
	srv := s3test.StartServer(t)
	var listings atomic.Int64
	endpoint, _ := faultProxy(t, srv, func(r *http.Request) bool {
		// the second page of the first listing fails, twice
		if r.URL.Query().Get("list-type") != "2" {
			return false
		}
		n := listings.Add(1)
		return n == 2 || n == 3
	})
	s := newTestS3(t, srv, func(c *S3Config) { c.Endpoint = endpoint })
	s.listPage = 2
	ctx := t.Context()
	var want []string
	for i := range 7 {
		k := fmt.Sprintf("p/%d", i)
		want = append(want, k)
		if err := s.Put(ctx, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.List(ctx, "p/", func(k string) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if n := listings.Load(); n != 6 { // 4 pages, 2 of them failed once
		t.Errorf("%d list requests, want 6", n)
	}
	// fn's error ends the listing and comes back as it is.
	stop := errors.New("stop")
	n := 0
	err := s.List(ctx, "p/", func(string) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("List with a failing fn: %d calls, %v", n, err)
	}
}

func benchS3(b *testing.B) (*S3, []byte) {
	srv := s3test.StartServer(b)
	s := newTestS3(b, srv, nil)
	data := make([]byte, 1<<20)
	rand.Read(data)
	return s, data
}

func BenchmarkS3Put1MiB(b *testing.B) {
	s, data := benchS3(b)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		if err := s.Put(ctx, fmt.Sprintf("bench/%d", i%16), data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkS3Get1MiB(b *testing.B) {
	s, data := benchS3(b)
	ctx := context.Background()
	if err := s.Put(ctx, "bench/get", data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Get(ctx, "bench/get"); err != nil {
			b.Fatal(err)
		}
	}
}
