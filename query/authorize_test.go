package query

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/auth"
)

// TestTableScopedKeys: a key that may query logs reads logs (through CTEs
// and subqueries too) and nothing else: not another table, not a file, not
// a table hidden behind a CTE of its own name.
func TestTableScopedKeys(t *testing.T) {
	e, cat, dir := newTestEngine(t, Config{})
	root := filepath.Dir(dir)
	secret := Table{Name: "secrets", Dir: filepath.Join(root, "secrets"), Columns: logsColumns, PartitionColumns: hiveColumns}
	cat.set(logsTable(dir), secret)
	writeParquet(t, filepath.Join(dir, "dt=2026-11-22", "hour=03", "logs-0-0-9.parquet"), logRows(0, 10))
	writeParquet(t, filepath.Join(secret.Dir, "dt=2026-11-22", "hour=03", "secrets-0-0-2.parquet"), logRows(0, 3))

	logsOnly := auth.WithPrincipal(context.Background(), auth.NewPrincipal("k1", "query:logs"))
	for _, q := range []string{
		"select count(*) from logs",
		"select count(*) from main.logs where n > 1",
		"with recent as (select * from logs where n > 5) select count(*) from recent",
		"select count(*) from logs where n in (select n from logs)",
		"select count(*) from logs, range(2)",
		"select count(*) from pg_catalog.pg_namespace",
	} {
		if _, err := e.Query(logsOnly, q); err != nil {
			t.Errorf("%q: %v", q, err)
		}
	}
	for _, q := range []string{
		"select count(*) from secrets",
		"select * from logs join secrets using (n)",
		"select count(*) from logs where n in (select n from secrets)",
		"select * from read_parquet('" + secret.Dir + "/**/*.parquet')",
		"with secrets as (select * from secrets) select * from secrets",
		"select * from (with secrets as (select 1) select * from secrets), secrets",
		"describe secrets",
		"pivot secrets on msg",
		"select * from temp.main.secrets",
		"select * from duckdb_settings()",
	} {
		_, err := e.Query(logsOnly, q)
		if !IsForbidden(err) || statusFor(err) != 403 {
			t.Errorf("%q: %v, want it refused as forbidden", q, err)
		}
	}
	// query:* and admin keys are not limited to named tables.
	all := auth.WithPrincipal(context.Background(), auth.NewPrincipal("k2", "query:*"))
	if _, err := e.Query(all, "select count(*) from secrets join logs using (n)"); err != nil {
		t.Fatal(err)
	}
}

// TestTableScopedKeysReadTheFace: a key limited to some tables may read
// the Postgres face's catalog (FaceCatalog: names, not rows), and no other
// catalog.
func TestTableScopedKeysReadTheFace(t *testing.T) {
	e, cat, dir := newTestEngine(t, Config{SetupSQL: []string{
		"ATTACH ':memory:' AS " + FaceCatalog, "CREATE SCHEMA " + FaceCatalog + ".pg",
		"CREATE VIEW " + FaceCatalog + ".pg.pg_class AS SELECT view_name AS relname FROM duckdb_views() WHERE NOT internal",
	}})
	cat.set(logsTable(dir))
	logsOnly := auth.WithPrincipal(context.Background(), auth.NewPrincipal("k1", "query:logs"))
	if _, err := e.Query(logsOnly, "select relname from "+FaceCatalog+".pg.pg_class c"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Query(logsOnly, "select * from memory.main.logs"); !IsForbidden(err) {
		t.Fatalf("another catalog: %v", err)
	}
}
