// Package s3test gives tests a real S3 server: versitygw (Apache-2.0, an S3
// gateway in Go) with its posix backend on a temporary directory, listening
// on 127.0.0.1 only, or an existing server named by SLUICE_TEST_S3.
//
// Where the server comes from, in order:
//
//  1. SLUICE_TEST_S3, if set: an existing server, as
//     http://ACCESS_KEY:SECRET_KEY@HOST:PORT (or https://...; key and secret
//     URL-escaped, no path or query). Each test gets its own bucket there,
//     emptied and removed when the test ends. Such a server cannot be stopped
//     by a test, so tests that need Stop/Start skip.
//  2. The versitygw binary, from ${SLUICE_CACHE:-$HOME/.cache/sluice}/bin
//     (where `scripts/s3-server install` puts it) or else from PATH: each
//     Start runs a fresh server on a free port with a t.TempDir() root, and
//     t.Cleanup kills it.
//  3. Neither: the test fails, saying to run `scripts/s3-server install`;
//     with SLUICE_SKIP_S3=1 it is skipped instead.
//
// This package must not import objstore: objstore's own tests import it.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sluice-dev/sluice/internal/testproc"
)

// Fixed credentials and region of the servers this package starts.
const (
	AccessKey = "sluice-test"
	SecretKey = "sluice-test-secret"
	Region    = "us-east-1"
)

// Environment variables this package reads.
const (
	EnvServer = "SLUICE_TEST_S3" // an existing server: http://KEY:SECRET@HOST:PORT
	EnvSkip   = "SLUICE_SKIP_S3" // "1": skip instead of failing when versitygw is missing
	EnvCache  = "SLUICE_CACHE"   // cache directory; versitygw is in its bin/
	binary    = "versitygw"      // installed by scripts/s3-server install
	startWait = 30 * time.Second // for a server to answer after it is started
	stopWait  = 10 * time.Second // for a killed server to exit
	opTimeout = 30 * time.Second // for bucket creation and removal
)

// forceSidecar makes the posix backend keep metadata in a sidecar directory
// even where xattrs work (for this package's tests).
var forceSidecar bool

// Server is an S3 server for one test.
type Server struct {
	// Endpoint is host:port, to use with Secure (false: plain HTTP).
	Endpoint  string
	Secure    bool
	AccessKey string
	SecretKey string
	// Bucket is a fresh, empty bucket made for the test.
	Bucket string

	t        testing.TB
	external bool

	// local versitygw only
	proc *testproc.Proc
	logs string // file with the server's output
}

// Start starts (or, with SLUICE_TEST_S3, connects to) an S3 server for the
// test and returns its endpoint (host:port, plain HTTP unless SLUICE_TEST_S3
// says https) and credentials. StartServer returns the same with more: the
// fresh bucket, Stop and Start.
func Start(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	s := StartServer(t)
	return s.Endpoint, s.AccessKey, s.SecretKey
}

// StartServer starts (or connects to) an S3 server for the test, with a fresh
// bucket in it (s.Bucket). A server it starts is killed in t.Cleanup, also
// when the test fails.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if raw := os.Getenv(EnvServer); raw != "" {
		s, err := parseServerURL(raw)
		if err != nil {
			t.Fatalf("%s: %v", EnvServer, err)
		}
		s.t = t
		s.Bucket = s.NewBucket(t)
		return s
	}
	bin, err := FindBinary()
	if err != nil {
		if os.Getenv(EnvSkip) == "1" {
			t.Skipf("no S3 server for this test (%s=1): %v", EnvSkip, err)
		}
		t.Fatalf("no S3 server for this test: %v\nrun `scripts/s3-server install` (about a minute, once), set %s to an existing server's URL, or set %s=1 to skip S3 tests",
			err, EnvServer, EnvSkip)
	}
	dir := t.TempDir() // before Cleanup(stop): cleanups run last-in first-out, so the server dies before its root is removed
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Secure:    false,
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		t:         t,
		logs:      filepath.Join(dir, "versitygw.log"),
	}
	s.proc = &testproc.Proc{Name: "versitygw", Path: bin, Logs: s.logs}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Log(testproc.KeepLogFile(t.Name(), "versitygw", s.logs))
		}
	})
	// Object metadata (ETag, content type) goes in user xattrs, as versitygw
	// wants by default; on a filesystem without them, in a sidecar directory.
	posix := []string{"posix"}
	if forceSidecar || !xattrsWork(root) {
		posix = append(posix, "--sidecar", filepath.Join(dir, "meta"))
		if err := os.Mkdir(filepath.Join(dir, "meta"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	posix = append(posix, root)

	// A free port can be taken between our probe and versitygw's listen;
	// try a few.
	for try := 1; ; try++ {
		ports, err := testproc.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		s.Endpoint = "127.0.0.1:" + strconv.Itoa(ports[0])
		s.proc.Args = append([]string{"--port", s.Endpoint, "--access", AccessKey, "--secret", SecretKey,
			"--region", Region, "--quiet"}, posix...)
		err = s.start()
		if err == nil {
			break
		}
		if try == 3 || !strings.Contains(testproc.Tail(s.logs, 4000), "address already in use") {
			t.Fatalf("cannot start versitygw: %v\n%s", err, testproc.Tail(s.logs, 4000))
		}
	}
	s.Bucket = s.NewBucket(t)
	return s
}

// External reports whether the server is an existing one (SLUICE_TEST_S3),
// which tests cannot stop.
func (s *Server) External() bool { return s.external }

// CommandLine is the command that runs the local server (empty for an
// external one), for messages.
func (s *Server) CommandLine() string {
	if s.external {
		return ""
	}
	return s.proc.CommandLine()
}

// URL is the objstore.Open URL of bucket on this server (credentials not
// included: see Env).
func (s *Server) URL(bucket string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {Region}, "path_style": {"true"}}
	if !s.Secure {
		q.Set("insecure", "true")
	}
	return "s3://" + bucket + "?" + q.Encode()
}

// Env is the environment that gives a process (or, with t.Setenv, this one)
// the server's credentials.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_SESSION_TOKEN="}
}

// Client returns a minio-go client for the server.
func (s *Server) Client() (*minio.Client, error) {
	return minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       s.Secure,
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
	})
}

// NewBucket creates another fresh, empty bucket and returns its name. On an
// external server it is emptied and removed when the test ends.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "sluice-test-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("cannot create test bucket %s at %s: %v", name, s.Endpoint, err)
	}
	if s.external {
		t.Cleanup(func() { removeBucket(t, c, name) })
	}
	return name
}

func removeBucket(t testing.TB, c *minio.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for obj := range c.ListObjectsIter(ctx, name, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Logf("cannot list test bucket %s for removal: %v", name, obj.Err)
			return
		}
		if err := c.RemoveObject(ctx, name, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Logf("cannot remove %s/%s: %v", name, obj.Key, err)
		}
	}
	if err := c.RemoveBucket(ctx, name); err != nil {
		t.Logf("cannot remove test bucket %s: %v", name, err)
	}
}

// Stop kills the server (SIGKILL, as a crash would) and waits for it to exit;
// its data stays, for Start. On an external server the test is skipped.
func (s *Server) Stop() {
	s.t.Helper()
	if s.external {
		s.t.Skipf("the %s server cannot be stopped by a test", EnvServer)
	}
	s.stop()
}

// Start starts the stopped server again, on the same port and data.
func (s *Server) Start() {
	s.t.Helper()
	if s.external {
		s.t.Skipf("the %s server cannot be restarted by a test", EnvServer)
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("cannot restart versitygw: %v\n%s", err, testproc.Tail(s.logs, 4000))
	}
}

// start runs the server and waits until it answers HTTP: any answer (403
// to an unsigned request) means the S3 API is up.
func (s *Server) start() error {
	client := &http.Client{Timeout: time.Second}
	return s.proc.Start(startWait, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Endpoint+"/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
}

func (s *Server) stop() {
	if err := s.proc.Kill(stopWait); err != nil {
		s.t.Error(err)
	}
}

// FindBinary returns the path of versitygw: in the cache directory
// (${SLUICE_CACHE:-$HOME/.cache/sluice}/bin) or else on PATH.
func FindBinary() (string, error) {
	dir := CacheBin()
	if dir != "" {
		p := filepath.Join(dir, binary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(binary); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %s nor on PATH", binary, dir)
}

// CacheBin is the directory scripts/s3-server installs versitygw into.
func CacheBin() string {
	dir := os.Getenv(EnvCache)
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache", "sluice")
	}
	return filepath.Join(dir, "bin")
}

// parseServerURL reads SLUICE_TEST_S3.
func parseServerURL(raw string) (*Server, error) {
	const format = "want http://ACCESS_KEY:SECRET_KEY@HOST:PORT (or https://), key and secret URL-escaped"
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%v; %s", err, format)
	}
	var errs []error
	if u.Scheme != "http" && u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("scheme %q", u.Scheme))
	}
	secret, ok := u.User.Password()
	if u.User == nil || u.User.Username() == "" || !ok || secret == "" {
		errs = append(errs, errors.New("no ACCESS_KEY:SECRET_KEY@"))
	}
	if u.Host == "" {
		errs = append(errs, errors.New("no host"))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, errors.New("a path, query or fragment"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s (with the secret hidden): %w; %s", u.Redacted(), errors.Join(errs...), format)
	}
	return &Server{
		Endpoint:  u.Host,
		Secure:    u.Scheme == "https",
		AccessKey: u.User.Username(),
		SecretKey: secret,
		external:  true,
	}, nil
}
