package query

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/auth"
)

// TestExportRefusesAllButOneSelect: Export writes only what the engine
// itself COPYs: a text that is not one SELECT (another statement kind, or
// one that would close the engine's parenthesis and COPY elsewhere) writes
// nothing, a key limited to a table may not export another, and dir must
// lie in the temp dir.
func TestExportRefusesAllButOneSelect(t *testing.T) {
	tmp := t.TempDir()
	e, _, logsDir := newTestEngine(t, Config{TempDir: filepath.Join(tmp, "duckdb")})
	os.MkdirAll(logsDir, 0o755)
	dir := filepath.Join(tmp, "duckdb", "q1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	planted := filepath.Join(logsDir, "planted.csv")
	for _, sqlText := range []string{
		"select 1) TO '" + planted + "' (FORMAT csv); select (1",
		"select 1)) TO '" + planted + "' (FORMAT csv) --",
		"COPY (select 1) TO '" + planted + "'",
		"explain select 1",
		"create table x as select 1",
	} {
		if _, err := e.Export(ctx, sqlText, dir, 0); err == nil || !IsUserError(err) && !IsForbidden(err) {
			t.Errorf("Export(%q): %v, want a user error", sqlText, err)
		}
		if _, err := os.Stat(planted); err == nil {
			t.Fatalf("Export(%q) wrote %s", sqlText, planted)
		}
	}
	if _, err := e.Export(ctx, "select 1", t.TempDir(), 0); err == nil {
		t.Fatal("exported outside the temp dir")
	}
	limited := auth.WithPrincipal(ctx, auth.NewPrincipal("k1", "query:other"))
	if _, err := e.Export(limited, "select * from logs", dir, 0); !IsForbidden(err) {
		t.Fatalf("query:other exporting logs: %v, want forbidden", err)
	}
	ex, err := e.Export(ctx, "select range as n from range(1000)", dir, 0)
	if err != nil || ex.Rows != 1000 {
		t.Fatalf("Export: %+v, %v", ex, err)
	}
	for name := range ExportFormats {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !errors.Is(ErrBytesScannedLimit, ErrBytesScannedLimit) || !IsUserError(ErrBytesScannedLimit) {
		t.Fatal("ErrBytesScannedLimit is not a user error")
	}
}
