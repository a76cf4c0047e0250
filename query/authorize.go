package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/auth"
)

// A key limited to named tables (query:logs, not query:* or admin) may run
// a statement only if DuckDB's own parser (json_serialize_sql, which knows
// SELECT alone) finds in it nothing but:
//   - references to the tables it may query (unqualified or in main),
//   - references to the common table expressions in scope (a CTE's own
//     body does not see its name: there a same-named table is a table),
//   - the catalogs pg_catalog and information_schema, and FaceCatalog
//     (names, not rows),
//   - the table functions that read no file: range, generate_series, unnest.
//
// Anything else (another table, read_parquet or any other table function,
// a statement kind json_serialize_sql cannot read, such as PIVOT or
// DESCRIBE) is refused before DuckDB runs the statement. Keys with
// query:* or admin run any read-only statement, as the sandbox allows.

// forbiddenError is a statement the principal may not run (HTTP 403,
// SQLSTATE 42501).
type forbiddenError struct{ msg string }

func (e *forbiddenError) Error() string { return e.msg }

// IsForbidden reports whether err is a statement the key may not run.
func IsForbidden(err error) bool {
	var fe *forbiddenError
	return errors.As(err, &fe)
}

var fileFreeTableFunctions = map[string]bool{"range": true, "generate_series": true, "unnest": true}

// authorize checks sqlText against the principal of ctx (none: the
// engine's own callers, unrestricted).
func authorize(ctx context.Context, conn *sql.Conn, sqlText string) error {
	p := auth.FromContext(ctx)
	if p == nil || p.Everything("query") {
		return nil
	}
	refuse := func(format string, args ...any) error {
		return &forbiddenError{msg: fmt.Sprintf("key %s (scopes %v) may not run this statement: ", p.KeyID, p.Scopes()) + fmt.Sprintf(format, args...)}
	}
	text, err := serializeSQL(ctx, conn, sqlText)
	if err != nil {
		return fmt.Errorf("cannot check the statement against the key's tables: %w", err)
	}
	tree := jmap(decodeJSON(text))
	if tree == nil {
		return refuse("it cannot be parsed")
	}
	if e, _ := tree["error"].(bool); e {
		return refuse("a key limited to some tables may run plain SELECT statements only (%s)", jstr(tree, "error_message"))
	}
	w := authzWalker{p: p}
	for _, st := range jlist(tree["statements"]) {
		w.visit(st, nil)
	}
	if w.denied != "" {
		return refuse("%s", w.denied)
	}
	return nil
}

type authzWalker struct {
	p      *auth.Principal
	denied string // the first thing refused
}

// visit walks v with ctes the common table expression names in scope.
func (w *authzWalker) visit(v any, ctes []string) {
	if w.denied != "" {
		return
	}
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			w.visit(c, ctes)
		}
	case map[string]any:
		if cm := jmap(x["cte_map"]); cm != nil {
			// Each CTE's body sees the CTEs before it, not itself.
			for _, e := range jlist(cm["map"]) {
				w.visit(jmap(e)["value"], ctes)
				ctes = append(ctes[:len(ctes):len(ctes)], strings.ToLower(jstr(e, "key")))
			}
		}
		switch jstr(x, "type") {
		case "BASE_TABLE":
			w.table(jstr(x, "catalog_name"), jstr(x, "schema_name"), jstr(x, "table_name"), ctes)
		case "TABLE_FUNCTION":
			name := strings.ToLower(jstr(x["function"], "function_name"))
			if !fileFreeTableFunctions[name] {
				w.denied = fmt.Sprintf("table function %s may read files or other tables", name)
				return
			}
		case "SHOW_REF":
			w.denied = "DESCRIBE and SHOW are for keys that may query every table"
			return
		}
		for k, c := range x {
			if k != "cte_map" {
				w.visit(c, ctes)
			}
		}
	}
}

// FaceCatalog is the attached database that holds the Postgres face's
// pg_catalog and information_schema (see pgwire.CatalogSQL).
const FaceCatalog = "sluice_pg"

func (w *authzWalker) table(catalog, schema, name string, ctes []string) {
	schema, lname := strings.ToLower(schema), strings.ToLower(name)
	switch {
	case strings.EqualFold(catalog, FaceCatalog) && schema != "":
		// The Postgres face's catalog views (pgwire.FaceDB): names, not rows.
	case catalog != "":
		w.denied = fmt.Sprintf("%s.%s.%s names a catalog", catalog, schema, name)
	case schema == "pg_catalog" || schema == "information_schema":
	case schema == "" && slices.Contains(ctes, lname):
	case (schema == "" || schema == "main") && w.p.Can("query", lname):
	default:
		w.denied = fmt.Sprintf("table %q is not one the key may query", name)
	}
}
