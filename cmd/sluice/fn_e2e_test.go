package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// cli runs the sluice CLI against s and fails the test on error.
func cli(t *testing.T, s *e2e.Server, args ...string) string {
	t.Helper()
	out, stderr, err := e2e.RunEnv(t, t.Context(), s.CLIEnv(), nil, append(args, "--server", s.URL())...)
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// buildWarmWasm builds the Go main package pkg as a warm wasm module (a
// WASI reactor) and returns the file's path.
func buildWarmWasm(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg)+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// buildAccessLog builds examples/accesslog as a warm wasm module.
func buildAccessLog(t *testing.T) string {
	return buildWarmWasm(t, "github.com/sluice-dev/sluice/examples/accesslog")
}

// TestFunctionAccessLog deploys the Go wasm example with the CLI, as the
// README shows, and sends raw access-log lines: typed rows come out, health
// checks are gone, counts are exact.
func TestFunctionAccessLog(t *testing.T) {
	wasm := buildAccessLog(t)
	s := e2e.Up(t, t.TempDir())
	cli(t, s, "fn", "deploy", "accesslog", "--runtime", "wasm", "--code", wasm, "--memory", "64MiB", "--timeout", "10s")
	cli(t, s, "fn", "publish", "accesslog")
	cli(t, s, "fn", "alias", "accesslog", "live", "--version", "1")
	cli(t, s, "stream", "create", "access", "--partitions", "2")
	cli(t, s, "table", "create", "access", "--schema", "../../examples/accesslog/schema.json", "--file-age", "1s")
	cli(t, s, "pipeline", "create", "access", "--stream", "access", "--function", "accesslog:live", "--table", "access")

	var lines bytes.Buffer
	const n = 3000
	for i := range n {
		path, ua := fmt.Sprintf("/api/items/%d", i), "Mozilla/5.0"
		switch i % 10 {
		case 0:
			path = "/healthz"
		case 1:
			ua = "kube-probe/1.29"
		}
		fmt.Fprintf(&lines, "%q\n", fmt.Sprintf(`10.0.0.%d - - [22/Nov/2026:08:%02d:%02d +0000] "GET %s HTTP/1.1" %d %d "-" "%s"`,
			i%250, i/60%60, i%60, path, 200+i%3, 100+i, ua))
	}
	_, stderr, err := e2e.Run(t, t.Context(), &lines, "put", "access", "-", "--server", s.URL())
	if err != nil {
		t.Fatalf("sluice put: %v\n%s", err, stderr)
	}
	want := int64(n - n/10*2) // every 10th line is /healthz, every 10th+1 a kube-probe
	s.WaitCount("select count(*) from access", want, 60*time.Second)
	for q, v := range map[string]int64{
		"select count(*) from access where path = '/healthz' or user_agent like 'kube-probe%'": 0,
		"select count(*) from access where parse_error is not null":                            0,
		"select count(distinct path) from access":                                              want,
	} {
		if got, err := s.Count(q); err != nil || got != v {
			t.Errorf("%s = %d, %v; want %d", q, got, err, v)
		}
	}
	r, err := s.Query("select any_value(typeof(status)), any_value(typeof(bytes)), any_value(typeof(ts)), min(ts) from access")
	if err != nil || fmt.Sprint(r.Rows) != "[[INTEGER BIGINT TIMESTAMP WITH TIME ZONE 2026-11-22T08:00:02Z]]" {
		t.Fatalf("typed columns: %v %v", r.Rows, err)
	}
	st := cli(t, s, "pipeline", "status", "access", "-o", "json")
	if !strings.Contains(st, `"function_version": "1"`) {
		t.Fatalf("status does not show the function version:\n%s", st)
	}
}

// TestFunctionPythonExecSurvivesKill runs the Python example as an exec
// function and kills its subprocess again and again while records flow:
// every record still lands once, with its e-mail redacted.
func TestFunctionPythonExecSurvivesKill(t *testing.T) {
	s := e2e.Up(t, t.TempDir(), "--allow-exec")
	cli(t, s, "fn", "deploy", "redact", "--runtime", "exec", "--code", "../../examples/redact/redact.py", "--timeout", "10s")
	cli(t, s, "stream", "create", "mail", "--partitions", "2")
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"columns":[{"name":"n","type":"int64"},{"name":"to","type":"string"},{"name":"_partition","type":"int32"},{"name":"_offset","type":"int64"}]}`), 0o644)
	cli(t, s, "table", "create", "mail", "--schema", schema, "--file-age", "500ms")
	cli(t, s, "pipeline", "create", "mail", "--stream", "mail", "--function", "redact", "--table", "mail", "--batch-size", "50")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	kills := make(chan int, 1)
	go func() { kills <- killLoop(ctx, "redact", s) }()
	const total = 6000
	for i := 0; i < total; i += 500 {
		var b bytes.Buffer
		for j := i; j < i+500; j++ {
			fmt.Fprintf(&b, `{"n":%d,"to":"user%d@example.com"}`+"\n", j, j)
		}
		var resp struct {
			FailedRecordCount int `json:"failed_record_count"`
		}
		if status, body := s.Post("/v1/streams/mail/records", "application/x-ndjson", b.Bytes(), &resp); status != 200 {
			t.Fatalf("ingest: %d %s", status, body)
		}
		time.Sleep(150 * time.Millisecond)
	}
	s.WaitCount("select count(*) from mail", total, 90*time.Second)
	cancel()
	n := <-kills
	if n < 3 {
		t.Fatalf("only %d kills of the function's process happened", n)
	}
	for q, v := range map[string]int64{
		"select count(distinct n) from mail":                           total,
		`select count(*) from mail where "to" like 'u***@example.com'`: total,
	} {
		if got, err := s.Count(q); err != nil || got != v {
			t.Errorf("%s = %d, %v; want %d", q, got, err, v)
		}
	}
	t.Logf("killed the Python process %d times", n)
}

// killLoop SIGKILLs the exec function's process (found by its code file in
// the function cache under the server's data dir) every 300ms until ctx ends,
// and returns how many times it did.
func killLoop(ctx context.Context, _ string, s *e2e.Server) int {
	kills := 0
	for ctx.Err() == nil {
		time.Sleep(300 * time.Millisecond)
		out, _ := exec.Command("pgrep", "-f", filepath.Join(s.Data, "cache", "functions")).Output()
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
				kills++
			}
		}
	}
	return kills
}

// startFollow starts `sluice fn logs NAME --follow` (with the flags extra)
// against s and returns its stdout; the process ends with ctx or the test.
func startFollow(ctx context.Context, t *testing.T, s *e2e.Server, name string, extra ...string) io.Reader {
	ctx, cancel := context.WithCancel(ctx)
	args := append([]string{"fn", "logs", name, "--follow", "--server", s.URL(), "--key", e2e.AdminKey}, extra...)
	follow := exec.CommandContext(ctx, e2e.Binary(t), args...)
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); follow.Wait() })
	return stdout
}

// TestFunctionLogsAcrossWorkersAndRestarts: what a function writes to stderr
// on either of two workers (`sluice up` and a `sluice serve --roles worker`)
// is read back with `sluice fn logs` from the first, with the partition and
// offsets it came from, and is still there after a restart.
func TestFunctionLogsAcrossWorkersAndRestarts(t *testing.T) {
	data := t.TempDir()
	s := e2e.Up(t, data, "--allow-exec")
	cli(t, s, "fn", "deploy", "chatty", "--runtime", "exec", "--code", "../../processors/fn/testdata/conform.py", "--timeout", "10s")
	cli(t, s, "stream", "create", "chat", "--partitions", "2")
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"columns":[{"name":"offset","type":"int64"}]}`), 0o644)
	cli(t, s, "table", "create", "chat", "--schema", schema, "--file-age", "500ms")
	cli(t, s, "pipeline", "create", "chat", "--stream", "chat", "--function", "chatty", "--table", "chat")
	w := e2e.Serve(t, t.TempDir(), nil, append(s.KafkaFlags(), "--roles", "worker",
		"--storage", filepath.Join(data, "objects"), "--worker-id", "w2", "--allow-exec")...)
	waitSplit(t, s, "chat")
	const n = 20 // one record per key: both partitions get some
	for i := range n {
		rec := fmt.Sprintf(`{"op":"log","k":"k%d"}`+"\n", i)
		if status, body := s.Post("/v1/streams/chat/records?key=k", "application/x-ndjson", []byte(rec), nil); status != 200 {
			t.Fatalf("ingest: %d %s", status, body)
		}
	}
	s.WaitCount("select count(*) from chat", n, 60*time.Second)
	type line struct {
		Partition int32  `json:"partition"`
		Pipeline  string `json:"pipeline"`
		Line      string `json:"line"`
	}
	check := func(s *e2e.Server) {
		e2e.WaitFor(t, 30*time.Second, "both partitions' lines in sluice fn logs", func() error {
			var lines []line
			for _, l := range strings.Split(strings.TrimSpace(cli(t, s, "fn", "logs", "chatty", "--limit", "100")), "\n") {
				var one line
				if err := json.Unmarshal([]byte(l), &one); err != nil {
					return fmt.Errorf("fn logs line %q: %w", l, err)
				}
				lines = append(lines, one)
			}
			got := map[int32]int{}
			for _, l := range lines {
				if l.Pipeline == "chat" && strings.HasPrefix(l.Line, "log at offset ") {
					got[l.Partition]++
				}
			}
			if got[0] == 0 || got[1] == 0 || got[0]+got[1] != n {
				return fmt.Errorf("lines per partition: %v", got)
			}
			return nil
		})
	}
	check(s)
	w.Stop()
	s.Stop()
	s = e2e.Up(t, data, "--allow-exec")
	check(s)

	// --follow prints the last lines, then the new ones as they are written,
	// each once.
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	stdout := startFollow(ctx, t, s, "chatty", "--limit", "5")
	printed := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			printed <- sc.Text()
		}
		close(printed)
	}()
	seen := map[string]bool{}
	next := func() string {
		select {
		case l, ok := <-printed:
			if !ok {
				t.Fatal("sluice fn logs --follow ended")
			}
			if seen[l] {
				t.Fatalf("--follow printed a line twice: %s", l)
			}
			seen[l] = true
			return l
		case <-ctx.Done():
			t.Fatal("timed out waiting for --follow to print")
		}
		return ""
	}
	for range 5 {
		next()
	}
	for i := range 3 {
		rec := fmt.Sprintf(`{"op":"log","k":"late%d"}`+"\n", i)
		if status, body := s.Post("/v1/streams/chat/records?key=k", "application/x-ndjson", []byte(rec), nil); status != 200 {
			t.Fatalf("ingest: %d %s", status, body)
		}
	}
	for range 3 {
		var l line
		if err := json.Unmarshal([]byte(next()), &l); err != nil || !strings.HasPrefix(l.Line, "log at offset ") {
			t.Fatalf("--follow printed %+v (%v)", l, err)
		}
	}
}
