package pgwire

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/query"
)

// TestFaceQueries runs what Postgres clients ask on connect and when they
// browse the schema, in every protocol, and checks the answers a Postgres
// server would give.
func TestFaceQueries(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			for _, tc := range []struct{ sql, want string }{
				{"select pg_catalog.version()", "version=PostgreSQL 14.0 (sluice)"},
				{"select version()", "version=PostgreSQL 14.0 (sluice)"},
				{"show server_version", "server_version=14.0"},
				{"SHOW TRANSACTION ISOLATION LEVEL", "transaction_isolation=read committed"},
				{"show search_path", "search_path=main"},
				{"select current_setting('server_version_num')", "current_setting=140000"},
				{"select current_database(), current_user", "current_database=sluice|current_user=analyst"},
				{"select count(*) from logs", "count=100"},
				{"select quote_ident('logs'), quote_ident('Logs')", `quote_ident=logs|quote_ident="Logs"`},
				{"select c.relname, n.nspname, c.relkind from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where pg_catalog.pg_table_is_visible(c.oid)", "relname=logs|nspname=main|relkind=r"},
				{"select 'logs'::regclass = (select oid from pg_class where relname = 'logs')", "?column?=true"},
				{"select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute a where a.attrelid = 'logs'::regclass and a.attnum = 7", "attname=amount|format_type=numeric(18,3)"},
				{"select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c where c.relname OPERATOR(pg_catalog.~) '^(logs)$' COLLATE pg_catalog.default", "pg_get_userbyid=sluice"},
				{"select data_type, udt_name from information_schema.columns where table_name = 'logs' and column_name = 'ts'", "data_type=timestamp with time zone|udt_name=timestamptz"},
				{"select table_schema, table_type from information_schema.tables where table_name = 'logs'", "table_schema=main|table_type=BASE TABLE"},
				{"select count(*) from pg_catalog.pg_index", "count=0"},
				{"select datname from pg_database", "datname=sluice"},
				{"select 'a''b' as \"current_user\", attrs from (select 1 as attrs)", "current_user=a'b|attrs=1"},
			} {
				got, err := collectNamed(c, tc.sql)
				if err != nil || strings.Contains(got, "\n") || !strings.HasPrefix(got, tc.want) {
					t.Errorf("%s: %q, %v; want %q", tc.sql, got, err, tc.want)
				}
			}
		})
	}
}

func fmtValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	default:
		return strings.TrimSpace(fmt.Sprint(x))
	}
}

// collectNamed runs sql and renders its rows: name=value joined by "|",
// rows by newlines.
func collectNamed(c *pgx.Conn, sql string) (string, error) {
	rows, _ := c.Query(context.Background(), sql)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		vals, err := r.Values()
		var parts []string
		for i, f := range r.FieldDescriptions() {
			parts = append(parts, f.Name+"="+strings.ReplaceAll(fmtValue(vals[i]), "\n", " "))
		}
		return strings.Join(parts, "|"), err
	})
	return strings.Join(got, "\n"), err
}
