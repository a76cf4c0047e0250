package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// readmeBlock returns the first ```sh block of README.md after the line
// holding marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("no sh block after %q", marker)
	}
	return s[start+6 : start+6+end]
}

// TestReadmeQuickstart runs the README's quickstart commands as written,
// against a `sluice up` started as the quickstart starts it (default data
// directory ./sluice-data, a new admin key), with only the server address
// and `go run ./cmd/sluice` replaced by the test's server and binary.
func TestReadmeQuickstart(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	dir := t.TempDir()
	s := e2e.UpEnv(t, filepath.Join(dir, "sluice-data"), []string{"SLUICE_ADMIN_KEY="})
	block := readmeBlock(t, "In another terminal:")
	root, _ := filepath.Abs("../..")
	block = strings.ReplaceAll(block, "localhost:8080", s.HTTPAddr)
	block = strings.ReplaceAll(block, "go run ./cmd/sluice", e2e.Binary(t))
	block = strings.ReplaceAll(block, "@examples/", "@"+root+"/examples/")
	ingest, query, ok := strings.Cut(block, e2e.Binary(t)+" sql")
	if !ok {
		t.Fatalf("the quickstart has no sql command:\n%s", block)
	}
	run := func(script string) (string, error) {
		cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(withoutEnv(os.Environ(), "SLUICE_KEY", "SLUICE_DATA"), "SLUICE_SERVER="+s.URL())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(ingest)
	if err != nil || !strings.Contains(out, `"failed_record_count":0`) {
		t.Fatalf("the quickstart's ingest: %v\n%s", err, out)
	}
	// Rows are queryable within a few seconds; until then the query
	// answers without them.
	e2e.WaitFor(t, time.Minute, "the quickstart's query to count the records", func() error {
		out, err := run(e2e.Binary(t) + " sql" + query)
		if err != nil {
			t.Fatalf("the quickstart's query: %v\n%s", err, out)
		}
		if !strings.Contains(out, "error") || !strings.Contains(out, "info") {
			return fmt.Errorf("%w: %s", errNotYet, out)
		}
		return nil
	})
}

// TestReadmeRedactExample runs the README's Python exec example as written,
// from the repository root, against a `sluice up --allow-exec` with the
// default data directory name: every e-mail address lands masked.
func TestReadmeRedactExample(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	s := e2e.UpEnv(t, filepath.Join(t.TempDir(), "sluice-data"), nil, "--allow-exec")
	block := readmeBlock(t, "functions are sandboxed and always allowed. With such a server:")
	script, query, ok := strings.Cut(block, "$S sql")
	if !ok {
		t.Fatalf("the example has no sql command:\n%s", block)
	}
	run := func(script string) (string, error) {
		cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", "S="+e2e.Binary(t)+"\n"+script)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "SLUICE_SERVER="+s.URL(), "SLUICE_KEY="+e2e.AdminKey)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(script); err != nil {
		t.Fatalf("the example's setup: %v\n%s", err, out)
	}
	e2e.WaitFor(t, 2*time.Minute, "the redacted rows", func() error {
		out, err := run("$S sql" + query)
		if err != nil {
			t.Fatalf("the example's query: %v\n%s", err, out)
		}
		if strings.Contains(out, "alice@") || strings.Contains(out, "carol@") {
			t.Fatalf("an address was not masked:\n%s", out)
		}
		if !strings.Contains(out, "a***@example.com") || !strings.Contains(out, "c***@example.net") || !strings.Contains(out, "(3 rows") {
			return fmt.Errorf("%w: %s", errNotYet, out)
		}
		return nil
	})
}
