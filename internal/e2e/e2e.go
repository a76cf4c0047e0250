// Package e2e runs the built sluice binary the way a user does, for the
// end-to-end tests of the README's promises.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/testproc"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/sluice once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/sluice-dev/sluice/cmd/sluice").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// AdminKey is the admin key every test server starts with
// (SLUICE_ADMIN_KEY), and what Post, Get, Query and Run send.
const AdminKey = "sluice_e2e-admin-key-for-tests-only"

// Server is a running `sluice up`.
type Server struct {
	t         testing.TB
	Data      string
	HTTPAddr  string
	KafkaAddr string
	PGAddr    string // Postgres wire protocol (--pg-listen)
	cmd       *exec.Cmd
	log       *syncWriter
	scheme    string       // http, or https with --tls-cert
	certFile  string       // --tls-cert
	client    *http.Client // trusts --tls-cert's certificate
	exited    chan struct{}
}

// Up starts `sluice up` on data with free ports and waits until it answers.
// The process is killed at the end of the test if still running.
func Up(t testing.TB, data string, extra ...string) *Server {
	t.Helper()
	return UpEnv(t, data, nil, extra...)
}

// UpEnv is Up with extra environment variables (KEY=VALUE). A port taken
// between FreeAddr and the server's bind (other test processes run in
// parallel) is retried with new ports.
func UpEnv(t testing.TB, data string, env []string, extra ...string) *Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := start(t, "up", data, env, extra)
		if err == nil {
			return s
		}
		if !strings.Contains(s.Log(), "address already in use") || attempt == 3 {
			t.Fatalf("sluice up exited early: %v (its output follows the failure)", err)
		}
	}
}

// Serve starts `sluice serve` on data with a free HTTP port and extra
// flags (--brokers among them) and waits until it answers.
func Serve(t testing.TB, data string, env []string, extra ...string) *Server {
	t.Helper()
	s, err := start(t, "serve", data, env, extra)
	if err != nil {
		t.Fatalf("sluice serve exited early: %v (its output follows the failure)", err)
	}
	return s
}

// start starts one `sluice up` or `sluice serve` and waits until it
// answers; it returns an error if the process exits first.
func start(t testing.TB, cmd, data string, env, extra []string) (*Server, error) {
	s := &Server{t: t, Data: data, HTTPAddr: FreeAddr(t), PGAddr: FreeAddr(t), log: &syncWriter{}, exited: make(chan struct{})}
	// Every server gets its own Postgres port: the default one would be
	// shared by all tests (and CI runs in parallel). A later --pg-listen
	// in extra overrides it.
	args := []string{cmd, "--data", data, "--listen", s.HTTPAddr, "--pg-listen", s.PGAddr}
	if cmd == "up" {
		s.KafkaAddr = FreeAddr(t)
		args = append(args, "--kafka-listen", s.KafkaAddr)
	}
	args = append(args, extra...)
	s.scheme, s.client = "http", http.DefaultClient
	for i, a := range extra {
		if a == "--tls-cert" && i+1 < len(extra) {
			pem, err := os.ReadFile(extra[i+1])
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			s.scheme, s.certFile = "https", extra[i+1]
			s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		}
	}
	s.cmd = exec.Command(Binary(t), args...)
	s.cmd.Env = append(append(os.Environ(), "SLUICE_ADMIN_KEY="+AdminKey), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Log(testproc.KeepLog(t.Name(), "sluice "+cmd+" "+s.HTTPAddr, []byte(s.Log())))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.exited:
			return s, fmt.Errorf("exited with %v", s.cmd.ProcessState)
		default:
		}
		resp, err := s.client.Get(s.URL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for sluice %s to answer /healthz: %v (its output follows the failure)", cmd, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Log is what the server printed so far.
func (s *Server) Log() string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.log.buf.String()
}

// URL is the server's HTTP base URL.
func (s *Server) URL() string { return s.scheme + "://" + s.HTTPAddr }

// KafkaFlags are the `sluice serve` flags that reach this server's embedded
// broker, as AdminKey.
func (s *Server) KafkaFlags() []string {
	return []string{"--brokers", s.KafkaAddr, "--kafka-sasl-user", auth.IDOf(AdminKey), "--kafka-sasl-password", AdminKey}
}

// KafkaOpts are the franz-go options that reach this server's embedded
// broker with key (its id as the SASL user).
func KafkaOpts(key string) []kgo.Opt {
	return []kgo.Opt{kgo.SASL(scram.Auth{User: auth.IDOf(key), Pass: key}.AsSha256Mechanism())}
}

// Client is the HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.client }

// Stop sends SIGTERM and waits for a clean exit.
func (s *Server) Stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.t.Fatalf("sluice on %s did not exit within 60s of SIGTERM (its output follows the failure)", s.HTTPAddr)
	}
	if !s.cmd.ProcessState.Success() {
		s.t.Fatalf("sluice on %s exited with %v after SIGTERM (its output follows the failure)", s.HTTPAddr, s.cmd.ProcessState)
	}
}

// Kill sends SIGKILL (if the process still runs) and waits for it to end.
// Signal sends sig to the process (SIGSTOP and SIGCONT for a zombie).
func (s *Server) Signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("cannot send %v to sluice: %v", sig, err)
	}
}

// PeakRSS is the server process's peak resident memory so far (VmHWM), in
// bytes.
func (s *Server) PeakRSS() int64 { return s.status("VmHWM:") }

// RSS is the server process's resident memory now (VmRSS), in bytes.
func (s *Server) RSS() int64 { return s.status("VmRSS:") }

func (s *Server) status(field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatalf("cannot read the server's memory: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				s.t.Fatalf("%s %q: %v", field, v, err)
			}
			return kb << 10
		}
	}
	s.t.Fatalf("no %s in /proc/PID/status", field)
	return 0
}

// Stopped reports whether the process is stopped (by SIGSTOP), from its
// state in /proc.
func (s *Server) Stopped() bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && i+2 < len(data) && data[i+2] == 'T'
}

func (s *Server) Kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// Exited reports whether the process has ended (say, at a failpoint).
func (s *Server) Exited(within time.Duration) bool {
	select {
	case <-s.exited:
		return true
	case <-time.After(within):
		return false
	}
}

// WaitFor polls f until it returns nil or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	timeout = Scaled(timeout)
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Scaled stretches a test deadline by $SLUICE_TEST_SLOWDOWN (a factor,
// default 1), for machines slower or busier than the ones the deadlines
// were chosen on. Deadlines are generous already: a condition polled for
// is usually met long before.
func Scaled(d time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(os.Getenv("SLUICE_TEST_SLOWDOWN"), 64); err == nil && f > 1 {
		return time.Duration(float64(d) * f)
	}
	return d
}

// Post sends body to path and decodes the JSON answer into out (if not nil).
func (s *Server) Post(path, contentType string, body []byte, out any) (int, string) {
	s.t.Helper()
	resp, err := s.Do("POST", path, contentType, body, AdminKey)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("POST %s: %s: cannot decode %q: %v", path, resp.Status, data, err)
		}
	}
	return resp.StatusCode, string(data)
}

// Do sends one request with key ("": none) as its bearer token.
func (s *Server) Do(method, path, contentType string, body []byte, key string) (*http.Response, error) {
	req, err := http.NewRequest(method, s.URL()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return s.client.Do(req)
}

// Get fetches path and decodes the JSON answer into out (if not nil).
func (s *Server) Get(path string, out any) (int, string) {
	s.t.Helper()
	resp, err := s.Do("GET", path, "", nil, AdminKey)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("GET %s: cannot decode %q: %v", path, data, err)
		}
	}
	return resp.StatusCode, string(data)
}

// QueryResult is the JSON answer of POST /v1/query.
type QueryResult struct {
	Columns []struct{ Name, Type string }
	Rows    [][]any
}

// Query runs SQL through the HTTP API.
func (s *Server) Query(sql string) (QueryResult, error) {
	body, _ := json.Marshal(map[string]string{"sql": sql})
	resp, err := s.Do("POST", "/v1/query", "application/json", body, AdminKey)
	if err != nil {
		return QueryResult{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return QueryResult{}, fmt.Errorf("%s: %s", resp.Status, data)
	}
	var r QueryResult
	err = json.Unmarshal(data, &r)
	return r, err
}

// Count runs a query that returns one number.
func (s *Server) Count(sql string) (int64, error) {
	r, err := s.Query(sql)
	if err != nil {
		return 0, err
	}
	if len(r.Rows) != 1 || len(r.Rows[0]) != 1 {
		return 0, fmt.Errorf("want one value, got %v", r.Rows)
	}
	n, ok := r.Rows[0][0].(float64)
	if !ok {
		return 0, fmt.Errorf("want a number, got %T %v", r.Rows[0][0], r.Rows[0][0])
	}
	return int64(n), nil
}

// WaitCount waits until sql returns want (and fails the test if it passes
// want, which would mean duplicates).
func (s *Server) WaitCount(sql string, want int64, timeout time.Duration) {
	s.t.Helper()
	WaitFor(s.t, timeout, fmt.Sprintf("%q to reach %d", sql, want), func() error {
		n, err := s.Count(sql)
		if err != nil {
			return err
		}
		if n > want {
			s.t.Fatalf("%q = %d, more than the %d records sent", sql, n, want)
		}
		if n != want {
			return fmt.Errorf("got %d", n)
		}
		return nil
	})
}

// Run runs the sluice binary as a client and returns its stdout.
func Run(t testing.TB, ctx context.Context, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	return RunEnv(t, ctx, nil, stdin, args...)
}

// CLIEnv is what a CLI needs in its environment to trust s's certificate.
func (s *Server) CLIEnv() []string {
	if s.certFile == "" {
		return nil
	}
	return []string{"SSL_CERT_FILE=" + s.certFile}
}

// RunEnv is Run with more environment variables.
func RunEnv(t testing.TB, ctx context.Context, env []string, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = append(append(os.Environ(), "SLUICE_KEY="+AdminKey), env...)
	var out, errb strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}
