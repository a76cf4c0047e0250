package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestFirstStartCreatesAdminKey is the quickstart with authentication on:
// `sluice up` on an empty store creates an admin key, prints it once and
// writes it to DATA/admin.key (0600), where the CLI run from the same
// directory finds it without being told; without a key everything but
// /healthz answers 401.
func TestFirstStartCreatesAdminKey(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sluice-data")
	s := e2e.UpEnv(t, data, []string{"SLUICE_ADMIN_KEY="})
	keyFile := filepath.Join(data, "admin.key")
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(raw))
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.key mode %v", fi.Mode().Perm())
	}
	if !strings.Contains(s.Log(), secret) {
		t.Fatalf("the new admin key was not printed:\n%s", s.Log())
	}
	for _, c := range []struct{ method, path, ctype, body string }{
		{"GET", "/v1/streams", "", ""},
		{"GET", "/v1/keys", "", ""},
		{"POST", "/v1/query", "application/json", `{"sql":"select 1"}`},
		{"POST", "/v1/streams/logs/records", "application/x-ndjson", `{"a":1}`},
		{"GET", "/v1/pipelines/logs/status", "", ""},
	} {
		if code := status(t, s, c.method, c.path, c.ctype, c.body, ""); code != 401 {
			t.Errorf("%s %s without a key: %d, want 401", c.method, c.path, code)
		}
	}
	if code := status(t, s, "GET", "/healthz", "", "", ""); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	// The CLI, run where `sluice up` ran, reads ./sluice-data/admin.key.
	cmd := exec.CommandContext(t.Context(), e2e.Binary(t), "stream", "list", "-o", "json", "--server", s.URL())
	cmd.Dir = dir
	cmd.Env = withoutEnv(os.Environ(), "SLUICE_KEY", "SLUICE_DATA")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"logs"`) {
		t.Fatalf("sluice stream list with the key file: %v\n%s", err, out)
	}
	// A restart keeps the key and creates no other.
	s.Stop()
	s = e2e.UpEnv(t, data, []string{"SLUICE_ADMIN_KEY="})
	if strings.Contains(s.Log(), "Created the first admin key") {
		t.Fatal("a restart created another admin key")
	}
	if code := status(t, s, "GET", "/v1/streams", "", "", secret); code != 200 {
		t.Fatalf("the admin key after a restart: %d", code)
	}
}

// TestScopedKeys: each key does what its scopes say and nothing more, a
// revoked or expired key stops working, and the refusals are in the audit
// log.
func TestScopedKeys(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	cli(t, s, "stream", "create", "clicks")
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"columns":[{"name":"user","type":"string"},{"name":"rest","type":"json"}],"rest_column":"rest"}`), 0o644)
	cli(t, s, "table", "create", "clicks", "--schema", schema, "--file-age", "300ms")
	cli(t, s, "pipeline", "create", "clicks", "--stream", "clicks", "--table", "clicks")

	ingest := createKey(t, s, "--scope", "ingest:clicks", "--name", "clicks producer")
	reader := createKey(t, s, "--scope", "query:clicks")
	if code := status(t, s, "POST", "/v1/streams/clicks/records", "application/x-ndjson", `{"user":"ann"}`, ingest.Key); code != 200 {
		t.Fatalf("ingest:clicks writing clicks: %d", code)
	}
	for _, c := range []struct{ method, path, ctype, body string }{
		{"POST", "/v1/streams/logs/records", "application/x-ndjson", `{"a":1}`},
		{"POST", "/v1/query", "application/json", `{"sql":"select count(*) from clicks"}`},
		{"GET", "/v1/streams", "", ""},
		{"POST", "/v1/keys", "application/json", `{"scopes":["admin"]}`},
	} {
		if code := status(t, s, c.method, c.path, c.ctype, c.body, ingest.Key); code != 403 {
			t.Errorf("ingest:clicks key, %s %s: %d, want 403", c.method, c.path, code)
		}
	}
	e2e.WaitFor(t, time.Minute, "the click to be queryable with the query:clicks key", func() error {
		code, body := statusBody(t, s, "POST", "/v1/query", "application/json", `{"sql":"select count(*) from clicks"}`, reader.Key)
		if code != 200 || !strings.Contains(body, "[1]") {
			return errNotYet
		}
		return nil
	})
	code, body := statusBody(t, s, "POST", "/v1/query", "application/json", `{"sql":"select count(*) from logs"}`, reader.Key)
	if code != 403 || !strings.Contains(body, `table \"logs\" is not one the key may query`) {
		t.Errorf("query:clicks reading logs: %d %s", code, body)
	}
	if code := status(t, s, "POST", "/v1/streams/clicks/records", "application/x-ndjson", `{"user":"bob"}`, reader.Key); code != 403 {
		t.Errorf("query:clicks ingesting: %d", code)
	}
	// The same over Postgres, with psql: clicks is read, logs refused
	// clearly, a wrong key refused at login.
	if psql, err := exec.LookPath("psql"); err == nil {
		host, port, _ := net.SplitHostPort(s.PGAddr)
		run := func(key, sql string) (string, error) {
			cmd := exec.CommandContext(t.Context(), psql, "-h", host, "-p", port, "-U", auth.IDOf(key), "-d", "sluice", "-At", "-c", sql)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+key, "PGCONNECT_TIMEOUT=10", "PSQLRC=/dev/null", "PGSSLMODE=prefer", "PGOPTIONS=")
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := run(reader.Key, "select count(*) from clicks"); err != nil || strings.TrimSpace(out) != "1" {
			t.Errorf("psql, query:clicks reading clicks: %v %s", err, out)
		}
		if out, err := run(reader.Key, "select count(*) from logs"); err == nil || !strings.Contains(out, `table "logs" is not one the key may query`) {
			t.Errorf("psql, query:clicks reading logs: %v %s", err, out)
		}
		if out, err := run(reader.Key+"x", "select 1"); err == nil || !strings.Contains(out, "password authentication failed") {
			t.Errorf("psql with a wrong key: %v %s", err, out)
		}
	} else if os.Getenv("SLUICE_REQUIRE_PSQL") != "" {
		t.Fatal("psql is not installed but SLUICE_REQUIRE_PSQL is set")
	}

	cli(t, s, "key", "revoke", ingest.ID)
	e2e.WaitFor(t, time.Minute, "the revoked key to be refused", func() error {
		if status(t, s, "POST", "/v1/streams/clicks/records", "application/x-ndjson", `{"user":"cy"}`, ingest.Key) != 401 {
			return errNotYet
		}
		return nil
	})
	brief := createKey(t, s, "--scope", "query:*", "--expires", "3s")
	e2e.WaitFor(t, time.Minute, "the expired key to be refused", func() error {
		if status(t, s, "POST", "/v1/query", "application/json", `{"sql":"select 1"}`, brief.Key) != 401 {
			return errNotYet
		}
		return nil
	})
	if !strings.Contains(s.Log(), "key="+ingest.ID) || !strings.Contains(s.Log(), "allowed=false") {
		t.Errorf("the audit log does not show the refusals of key %s", ingest.ID)
	}
	// The audit table has them too, and the admin changes.
	e2e.WaitFor(t, time.Minute, "the audit table to hold the refusals and the revocation", func() error {
		refused, err := s.Count("select count(*) from sluice_audit where key = '" + ingest.ID + "' and not allowed and status = 403")
		if err != nil {
			return err
		}
		revoked, err := s.Count("select count(*) from sluice_audit where allowed and action = 'DELETE' and object = '/v1/keys/" + ingest.ID + "'")
		if err != nil {
			return err
		}
		if refused < 4 || revoked != 1 {
			return fmt.Errorf("%w: %d refusals, %d revocations", errNotYet, refused, revoked)
		}
		return nil
	})
	var keys []auth.KeyInfo
	if code, body := s.Get("/v1/keys", &keys); code != 200 || strings.Contains(body, reader.Key) || strings.Contains(body, "hash") {
		t.Fatalf("GET /v1/keys: %d %s", code, body)
	}
}

// TestSafeDefaults: exec functions need --allow-exec; a browser's
// cross-origin or form-encoded request and a rebinding Host change nothing;
// --auth off is refused on a non-loopback address.
func TestSafeDefaults(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	script := filepath.Join(t.TempDir(), "f.sh")
	os.WriteFile(script, []byte("#!/bin/sh\ncat\n"), 0o755)
	out, stderr, err := e2e.Run(t, t.Context(), nil, "fn", "deploy", "f", "--runtime", "exec", "--code", script, "--server", s.URL())
	if err == nil || !strings.Contains(stderr, "--allow-exec") {
		t.Fatalf("exec deploy without --allow-exec: %v\n%s%s", err, out, stderr)
	}
	before := countLogs(t, s)
	for _, c := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, 415},
		{"form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"cross-site", map[string]string{"Content-Type": "application/x-ndjson", "Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-origin", map[string]string{"Content-Type": "application/x-ndjson", "Origin": "http://evil.example"}, 403},
		{"rebinding", map[string]string{"Content-Type": "application/x-ndjson", "Host": "evil.example"}, 421},
	} {
		req, _ := http.NewRequest("POST", s.URL()+"/v1/streams/logs/records", strings.NewReader(`{"message":"csrf"}`+"\n"))
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		if h, ok := c.header["Host"]; ok {
			req.Host = h
		}
		// What a web page can make a browser send: no Authorization header.
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	// Nothing of the refused requests was written: a marker sent after
	// them arrives alone.
	if code, body := s.Post("/v1/streams/logs/records", "application/x-ndjson", []byte(`{"message":"marker"}`+"\n"), nil); code != 200 {
		t.Fatalf("marker: %d %s", code, body)
	}
	s.WaitCount("select count(*) from logs where message in ('csrf', 'marker')", before+1, time.Minute)

	cmd := exec.Command(e2e.Binary(t), "up", "--data", t.TempDir(), "--auth", "off", "--listen", "0.0.0.0:0")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--auth off is refused") {
		t.Fatalf("--auth off on 0.0.0.0: %v\n%s", err, out)
	}
}

func countLogs(t *testing.T, s *e2e.Server) int64 {
	n, err := s.Count("select count(*) from logs where message in ('csrf', 'marker')")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func createKey(t *testing.T, s *e2e.Server, args ...string) auth.Created {
	t.Helper()
	var k auth.Created
	if err := json.Unmarshal([]byte(cli(t, s, append([]string{"key", "create"}, args...)...)), &k); err != nil || k.Key == "" {
		t.Fatalf("key create: %v", err)
	}
	return k
}

func status(t *testing.T, s *e2e.Server, method, path, ctype, body, key string) int {
	t.Helper()
	code, _ := statusBody(t, s, method, path, ctype, body, key)
	return code
}

func statusBody(t *testing.T, s *e2e.Server, method, path, ctype, body, key string) (int, string) {
	t.Helper()
	resp, err := s.Do(method, path, ctype, []byte(body), key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// TestUsagePlans: past its plan a key gets 429 with Retry-After, and
// nothing of the refused requests is written; an admin lifts the limits.
func TestUsagePlans(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	// One request per 100 s, one query per 2 min: the second of each is
	// refused however slow the machine.
	k := createKey(t, s, "--scope", "ingest:logs", "--scope", "query:logs", "--ingest-rps", "0.01", "--queries-per-minute", "0.5")
	send := func(msg string) (int, http.Header) {
		resp, err := s.Do("POST", "/v1/streams/logs/records", "application/x-ndjson", []byte(`{"message":"`+msg+`"}`+"\n"), k.Key)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	if code, _ := send("plan-1"); code != 200 {
		t.Fatalf("first ingest: %d", code)
	}
	code, h := send("plan-refused")
	if code != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("second ingest: %d, Retry-After %q", code, h.Get("Retry-After"))
	}
	q := `{"sql":"select count(*) from logs where message like 'plan-%'"}`
	if code := status(t, s, "POST", "/v1/query", "application/json", q, k.Key); code != 200 {
		t.Fatalf("first query: %d", code)
	}
	if code, body := statusBody(t, s, "POST", "/v1/query", "application/json", q, k.Key); code != 429 || !strings.Contains(body, "usage plan") {
		t.Fatalf("second query: %d %s", code, body)
	}
	cli(t, s, "key", "limits", k.ID) // no flags: no limits
	if code, _ := send("plan-2"); code != 200 {
		t.Fatalf("ingest after the limits were lifted: %d", code)
	}
	s.WaitCount("select count(*) from logs where message in ('plan-1', 'plan-2')", 2, time.Minute)
	if n, err := s.Count("select count(*) from logs where message = 'plan-refused'"); err != nil || n != 0 {
		t.Fatalf("the refused request wrote %d records (%v)", n, err)
	}
}
