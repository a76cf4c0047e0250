package query

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSandboxRefusesEscapes(t *testing.T) {
	e, _, dir := newTestEngine(t, Config{TempDir: t.TempDir()})
	writeParquet(t, filepath.Join(dir, "dt=2026-11-22", "hour=03", "logs-0-0-9.parquet"), logRows(0, 10))
	outside := filepath.Join(t.TempDir(), "out.csv")
	inside := filepath.Join(dir, "planted.parquet")
	root := filepath.Dir(dir)
	queries := []string{
		"select * from read_csv('/etc/passwd')",
		"select * from read_text('" + root + "/../../../etc/passwd')",
		"select * from glob('/etc/*')",
		"copy (select 1) to '" + outside + "'",
		"copy (select 1) to '" + inside + "' (format parquet)",
		"attach '" + filepath.Join(t.TempDir(), "x.db") + "' as x",
		"install httpfs",
		"load httpfs",
		"set memory_limit = '10GB'",
		"set global enable_external_access = true",
		"reset memory_limit",
		"pragma memory_limit = '10GB'",
		"select * from query('create table t as select 1')",
	}
	memBefore := scalar(t, e, "select current_setting('memory_limit')")
	for _, q := range queries {
		res, err := e.Query(context.Background(), q)
		if err == nil {
			t.Errorf("%q succeeded: %+v", q, res)
			continue
		}
		if !IsUserError(err) {
			t.Errorf("%q: not a user error: %v", q, err)
		}
	}
	for _, p := range []string{outside, inside} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	// The locked configuration is really in force...
	for name, want := range lockedSettings {
		got := scalar(t, e, "select current_setting('"+name+"')::varchar")
		if !strings.EqualFold(got.(string), want) {
			t.Errorf("%s = %v, want %s", name, got, want)
		}
	}
	if got := scalar(t, e, "select current_setting('memory_limit')"); got != memBefore {
		t.Errorf("memory_limit changed from %v to %v", memBefore, got)
	}
	// ...and the views over allowed directories still read their files.
	if got := scalar(t, e, "select count(*) from logs"); got != int64(10) {
		t.Fatalf("count = %v, want 10", got)
	}
	if got := scalar(t, e, "select count(*) from read_parquet('"+dir+"/**/*.parquet')"); got != int64(10) {
		t.Fatalf("direct read of an allowed dir = %v, want 10", got)
	}
}

// TestDuckDBLayerSandbox bypasses the statement-kind filter and checks that
// DuckDB's own configuration refuses the escapes.
func TestDuckDBLayerSandbox(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{})
	outside := filepath.Join(t.TempDir(), "out.csv")
	for _, q := range []string{
		"select * from read_csv('/etc/passwd')",
		"copy (select 1) to '" + outside + "'",
		"attach '" + filepath.Join(t.TempDir(), "x.db") + "' as x",
		"install httpfs",
		"load httpfs",
		"set memory_limit = '10GB'",
		"set global lock_configuration = false",
		"set global enable_external_access = true",
		"set global allowed_directories = ['/']",
	} {
		_, err := e.db.ExecContext(context.Background(), q)
		if err == nil {
			t.Errorf("%q succeeded on a raw connection", q)
		} else if !IsUserError(err) {
			t.Errorf("%q: not a user error: %v", q, err)
		}
	}
	if _, err := os.Stat(outside); err == nil {
		t.Errorf("%s was written", outside)
	}
}

func TestNewConfig(t *testing.T) {
	e, err := New(Config{}, &testCatalog{})
	if err != nil {
		t.Fatalf("no allowed dirs: %v", err)
	}
	defer e.Close()
	if got := scalar(t, e, "select current_setting('temp_directory')"); got != "" {
		t.Fatalf("temp_directory = %q, want spilling disabled", got)
	}
	tmp := t.TempDir()
	e2, _, _ := newTestEngine(t, Config{TempDir: tmp, MemoryLimit: "256MB", Threads: 1})
	for q, want := range map[string]any{
		"select current_setting('temp_directory')": tmp,
		"select current_setting('threads')":        int64(1),
	} {
		if got := scalar(t, e2, q); got != want {
			t.Errorf("%s = %v (%T), want %v", q, got, got, want)
		}
	}
}

func TestNewFailsOnBadSetting(t *testing.T) {
	_, err := New(Config{MemoryLimit: "plenty"}, &testCatalog{})
	if err == nil || !strings.Contains(err.Error(), "cannot apply duckdb setting memory_limit") {
		t.Fatalf("err = %v, want a memory_limit setting error", err)
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("nil catalog accepted")
	}
}

func TestCheckColumn(t *testing.T) {
	good := []string{"TIMESTAMP", "DECIMAL(18, 3)", "VARCHAR[]", "STRUCT(a INTEGER, b VARCHAR[])", "MAP(VARCHAR, INTEGER)"}
	for _, typ := range good {
		if err := checkColumn(Column{"c", typ}); err != nil {
			t.Errorf("%q rejected: %v", typ, err)
		}
	}
	bad := []string{"", "INTEGER) AS x, (SELECT 1", "INTEGER; DROP VIEW logs", "VARCHAR -- x", "INT)(", "'x'"}
	for _, typ := range bad {
		if err := checkColumn(Column{"c", typ}); err == nil {
			t.Errorf("%q accepted", typ)
		}
	}
}

func TestIsAllowed(t *testing.T) {
	e := &Engine{allowed: []string{"/data/tables"}}
	for dir, want := range map[string]bool{
		"/data/tables":        true,
		"/data/tables/logs":   true,
		"/data/tables2/logs":  false,
		"/data":               false,
		"/data/tables/../etc": false,
		"/etc":                false,
	} {
		if got := e.isAllowed(filepath.Clean(dir)); got != want {
			t.Errorf("isAllowed(%s) = %v, want %v", dir, got, want)
		}
	}
}

func TestSpillsToTempDir(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), "spill", "duckdb")
	e, _, _ := newTestEngine(t, Config{TempDir: tmp, MemoryLimit: "64MB"})
	q := "select count(*) from (select i, count(*) from range(12000000) t(i) group by i)"
	if got := scalar(t, e, q); got != int64(12000000) {
		t.Fatalf("count = %v", got)
	}
	e2, _, _ := newTestEngine(t, Config{MemoryLimit: "64MB"})
	if _, err := e2.Query(context.Background(), q); err == nil || IsUserError(err) {
		t.Fatalf("without TempDir: err = %v, want an out-of-memory server error", err)
	}
}
