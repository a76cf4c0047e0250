package schemas_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/sluice-dev/sluice/schemas"
)

// The tests in this package that read Parquet back with DuckDB use these
// helpers; duckdb-go is linked into the test binary only.

// openDuckDB opens an in-memory DuckDB with the session time zone pinned to
// UTC, as the query service does.
func openDuckDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return db
}

// queryStrings runs q and returns every row with each value cast to text by
// the query itself (callers cast), so comparisons do not depend on how
// duckdb-go maps types to Go.
func queryStrings(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// columnTypes returns DuckDB's name → type of q's result columns.
func columnTypes(t *testing.T, db *sql.DB, q string) map[string]string {
	t.Helper()
	types := map[string]string{}
	for _, r := range queryStrings(t, db, "SELECT column_name, column_type FROM (DESCRIBE "+q+")") {
		types[r[0]] = r[1]
	}
	return types
}

// duckNormalize spells typ as DESCRIBE does (DuckDBType quotes every
// struct field name; DuckDB's own output quotes only where needed).
func duckNormalize(t *testing.T, db *sql.DB, typ string) string {
	t.Helper()
	return queryStrings(t, db, "SELECT typeof(CAST(NULL AS "+typ+"))")[0][0]
}

// writeParquet writes rec to path as sluice's sink does (zstd, dictionary,
// statistics, pqarrow's default Arrow properties).
func writeParquet(t *testing.T, path string, rec arrow.RecordBatch) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(true), parquet.WithStats(true))
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil { // closes f too
		t.Fatal(err)
	}
}

// writeRows converts each JSON line with s (Strict), builds one record and
// writes it to path.
func writeRows(t *testing.T, s *schemas.Schema, path string, lines ...string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := s.NewBuilder(mem)
	defer b.Release()
	for _, l := range lines {
		r, err := s.Convert([]byte(l), testMeta, schemas.Strict)
		if err != nil {
			t.Fatalf("Convert(%s): %v", l, err)
		}
		b.Append(r)
	}
	rec := b.NewRecord()
	defer rec.Release()
	writeParquet(t, path, rec)
}
