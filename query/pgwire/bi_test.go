package pgwire

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/query"
)

// grafanaSchema is the schema constraint of Grafana's Postgres data source
// (public/app/plugins/datasource/grafana-postgresql-datasource/
// postgresMetaQuery.ts, buildSchemaConstraint): the schemas of the
// search_path.
const grafanaSchema = `quote_ident(table_schema) IN (
  SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s)`

// TestMetabaseQueries runs the queries of Metabase's Postgres driver
// (src/metabase/driver/postgres.clj) as it renders them: the database's
// time zone and the table sync (get-tables-sql).
func TestMetabaseQueries(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			for _, tc := range []struct{ sql, want string }{
				{"show timezone;", "UTC"},
				{`SELECT n.nspname AS schema, c.relname AS name,
				    CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS type,
				    d.description AS description, stat.n_live_tup AS estimated_row_count
				  FROM pg_catalog.pg_class AS c INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
				  LEFT JOIN pg_catalog.pg_description AS d ON (c.oid = d.objoid) AND (d.objsubid = 0) AND (d.classoid = 'pg_class'::regclass)
				  LEFT JOIN pg_stat_user_tables AS stat ON (n.nspname = stat.schemaname) AND (c.relname = stat.relname)
				  WHERE (c.relnamespace = n.oid) AND (n.nspname !~ '^pg_') AND (n.nspname <> 'information_schema')
				    AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND (n.nspname IN ('main'))
				  ORDER BY type ASC, schema ASC, name ASC`, "main logs TABLE NULL NULL"},
			} {
				if got, err := collectText(c, tc.sql); err != nil || got != tc.want {
					t.Errorf("%s:\n got %q, %v\nwant %q", tc.sql, got, err, tc.want)
				}
			}
		})
	}
}

// collectText runs sql and renders its rows: values joined by " ", rows
// by "|".
func collectText(c *pgx.Conn, sql string) (string, error) {
	rows, _ := c.Query(context.Background(), sql)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		vals, err := r.Values()
		var parts []string
		for _, v := range vals {
			parts = append(parts, fmtValue(v))
		}
		return strings.Join(parts, " "), err
	})
	return strings.Join(got, "|"), err
}

// TestGrafanaQueries runs the introspection queries of Grafana's Postgres
// data source (same file): the version, the schema, table and column
// pickers.
func TestGrafanaQueries(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			for _, tc := range []struct{ sql, want string }{
				{"SELECT current_setting('server_version_num')::int/100 as version", "1400"},
				{"SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'", ""},
				{`SELECT schema_name AS "name" FROM information_schema.schemata
				  WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast') ORDER BY schema_name`, "main"},
				{`SELECT quote_ident(table_name) AS "table" FROM information_schema.tables WHERE quote_ident(table_schema) = 'main' ORDER BY 1`, "logs"},
				{`SELECT CASE WHEN ` + grafanaSchema + ` THEN quote_ident(table_name) ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS "table"
				  FROM information_schema.tables WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog')
				  ORDER BY CASE WHEN ` + grafanaSchema + ` THEN 0 ELSE 1 END, 1`, "logs"},
				{`SELECT quote_ident(column_name) AS "column", data_type AS "type" FROM information_schema.columns
				  WHERE CASE WHEN array_length(parse_ident('logs'),1) = 2
				    THEN quote_ident(table_schema) = (parse_ident('logs'))[1] AND quote_ident(table_name) = (parse_ident('logs'))[2]
				    ELSE quote_ident(table_name) = 'logs' AND ` + grafanaSchema + ` END`,
					"id bigint|msg text|odd boolean|score double precision|ts timestamp with time zone|payload json|amount numeric|pair text"},
			} {
				if got, err := collectText(c, tc.sql); err != nil || got != tc.want {
					t.Errorf("%s:\n got %q, %v\nwant %q", tc.sql, got, err, tc.want)
				}
			}
		})
	}
}
