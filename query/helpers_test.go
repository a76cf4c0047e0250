package query

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// testCatalog is a Catalog whose tables a test can change at any time.
type testCatalog struct {
	mu     sync.Mutex
	tables []Table
}

func (c *testCatalog) Tables() []Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Table(nil), c.tables...)
}

// Files lists the table's Parquet files under its directory (a test's
// stand-in for the manifests), with their Hive values for keep.
func (c *testCatalog) Files(ctx context.Context, table string, keep func(FileStats) bool) (Files, error) {
	for _, t := range c.Tables() {
		if t.Name == table {
			return dirFiles(t.Dir, keep)
		}
	}
	return Files{}, nil
}

func dirFiles(dir string, keep func(FileStats) bool) (Files, error) {
	var out Files
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, _ := filepath.Rel(dir, filepath.Dir(p))
		st := FileStats{Part: map[string]string{}}
		for _, seg := range strings.Split(filepath.ToSlash(rel), "/") {
			if k, v, ok := strings.Cut(seg, "="); ok {
				st.Part[k] = v
			}
		}
		if keep != nil && !keep(st) {
			out.Pruned++
			return nil
		}
		out.Paths = append(out.Paths, p)
		return nil
	})
	out.UnionByName = true // fixtures of different schemas share tables
	return out, err
}

func (c *testCatalog) set(tables ...Table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tables = tables
}

var logsColumns = []Column{
	{"ts", "TIMESTAMP"}, {"msg", "VARCHAR"}, {"payload", "JSON"}, {"n", "BIGINT"},
}

var hiveColumns = []Column{{"dt", "DATE"}, {"hour", "INTEGER"}}

func logsTable(dir string) Table {
	return Table{Name: "logs", Dir: dir, Columns: logsColumns, PartitionColumns: hiveColumns}
}

// newTestEngine starts an engine whose only allowed directory is a fresh
// temporary root, with a "logs" table in root/logs.
func newTestEngine(t testing.TB, cfg Config) (*Engine, *testCatalog, string) {
	t.Helper()
	root := t.TempDir()
	cat := &testCatalog{}
	cat.set(logsTable(filepath.Join(root, "logs")))
	cfg.AllowedDirs = append(cfg.AllowedDirs, root)
	if cfg.Threads == 0 {
		cfg.Threads = 2
	}
	e, err := New(cfg, cat)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, cat, filepath.Join(root, "logs")
}

var (
	writerOnce sync.Once
	writerDB   *sql.DB
	writerErr  error
)

// writer is an unsandboxed DuckDB used to produce fixtures.
func writer(t testing.TB) *sql.DB {
	t.Helper()
	writerOnce.Do(func() {
		var c *duckdb.Connector
		c, writerErr = duckdb.NewConnector("", nil)
		if writerErr == nil {
			writerDB = sql.OpenDB(c)
		}
	})
	if writerErr != nil {
		t.Fatalf("open fixture writer: %v", writerErr)
	}
	return writerDB
}

// writeParquet writes the rows of selectSQL to path as Parquet, atomically
// like sluice's writers: to a temporary file, then renamed into place.
func writeParquet(t testing.TB, path, selectSQL string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	q := "COPY (" + selectSQL + ") TO " + sqlString(tmp) + " (FORMAT parquet)"
	if _, err := writer(t).Exec(q); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// logRows selects n log rows starting at id first.
func logRows(first, n int) string {
	return "SELECT TIMESTAMP '2026-11-22 03:00:00' + to_seconds(i) AS ts, 'm' || i AS msg, " +
		"('{\"i\":' || i || '}')::JSON AS payload, i::BIGINT AS n FROM range(" +
		strconv.Itoa(first) + ", " + strconv.Itoa(first+n) + ") t(i)"
}

func mustQuery(t testing.TB, e *Engine, q string) *Result {
	t.Helper()
	res, err := e.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return res
}

// scalar runs q and returns the single value of its single row.
func scalar(t testing.TB, e *Engine, q string) any {
	t.Helper()
	res := mustQuery(t, e, q)
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		t.Fatalf("query %q: want one value, got %v", q, res.Rows)
	}
	return res.Rows[0][0]
}
