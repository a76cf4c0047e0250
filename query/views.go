package query

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// viewState is what the engine knows about one table's view.
type viewState struct {
	table Table
	ddl   string // CREATE statement of the installed view, "" if none
}

// refresh brings the database-wide views in line with the catalog: every
// table has a view with its declared columns and no row (what SHOW TABLES,
// DESCRIBE and a statement that names no table see); views of tables gone
// from the catalog are dropped. A statement reads a table's files through
// a temporary view of its own connection, over the files the manifest
// lists (see bind), which shadows this one. It reports the problems met,
// one per table; a failing table does not keep the others from refreshing.
func (e *Engine) refresh(ctx context.Context) error {
	tables := e.cat.Tables()
	e.mu.Lock()
	defer e.mu.Unlock()

	var errs []error
	seen := make(map[string]bool, len(tables))
	for _, t := range tables {
		key := strings.ToLower(t.Name) // DuckDB identifiers are case-insensitive
		seen[key] = true
		if err := e.refreshTable(ctx, key, t); err != nil {
			errs = append(errs, err)
			if st := e.views[key]; st != nil {
				e.dropStale(ctx, t.Name, st)
			}
		}
	}
	for key, st := range e.views {
		if seen[key] {
			continue
		}
		if err := e.dropView(ctx, key, st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) refreshTable(ctx context.Context, key string, t Table) error {
	if _, err := e.checkTable(t); err != nil {
		return fmt.Errorf("cannot expose table %q: %w", t.Name, err)
	}
	st := e.views[key]
	if st == nil {
		st = &viewState{}
		e.views[key] = st
	}
	st.table = t
	ddl, err := viewDDL(t, nil, false)
	if err != nil {
		return fmt.Errorf("cannot expose table %q: %w", t.Name, err)
	}
	if ddl == st.ddl {
		return nil
	}
	if _, err := e.db.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("cannot create view %q: %w", t.Name, err)
	}
	st.ddl = ddl
	return nil
}

// dropStale drops the view left from an earlier state once the table can no
// longer be exposed: a missing view makes the query fail with the reason
// attached.
func (e *Engine) dropStale(ctx context.Context, name string, st *viewState) {
	if st.ddl == "" {
		return
	}
	if _, err := e.db.ExecContext(ctx, "DROP VIEW IF EXISTS "+sqlIdent(name)); err != nil {
		return
	}
	st.ddl = ""
}

func (e *Engine) dropView(ctx context.Context, key string, st *viewState) error {
	if st.ddl != "" {
		if _, err := e.db.ExecContext(ctx, "DROP VIEW IF EXISTS "+sqlIdent(key)); err != nil {
			return fmt.Errorf("cannot drop view %q: %w", key, err)
		}
	}
	delete(e.views, key)
	return nil
}

// known returns the exposed tables among names (lower-cased identifiers).
func (e *Engine) known(names map[string]bool) []Table {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Table
	for key, st := range e.views {
		if names[key] {
			out = append(out, st.table)
		}
	}
	return out
}

// checkTable validates what the catalog says about t and returns its
// absolute directory.
func (e *Engine) checkTable(t Table) (string, error) {
	if t.Name == "" || strings.ContainsRune(t.Name, 0) {
		return "", errors.New("invalid table name")
	}
	if t.Dir == "" {
		return "", errors.New("empty directory")
	}
	dir, err := filepath.Abs(t.Dir)
	if err != nil {
		return "", fmt.Errorf("cannot resolve directory: %w", err)
	}
	if strings.ContainsAny(dir, "*?[]{}\x00") {
		return "", fmt.Errorf("directory %q contains glob characters", dir)
	}
	if !e.isAllowed(dir) {
		return "", fmt.Errorf("directory %q is not inside the allowed directories %v", dir, e.allowed)
	}
	return dir, nil
}

// viewDDL renders the CREATE statement of t's database-wide view (files
// nil: an empty relation with the declared columns) or, with files, of the
// temporary view a statement reads t through.
func viewDDL(t Table, files []string, unionByName bool) (string, error) {
	for _, c := range append(append([]Column(nil), t.Columns...), t.PartitionColumns...) {
		if err := checkColumn(c); err != nil {
			return "", err
		}
	}
	head := "CREATE OR REPLACE VIEW " + sqlIdent(t.Name) + " AS "
	if files != nil {
		head = "CREATE OR REPLACE TEMP VIEW " + sqlIdent(t.Name) + " AS "
	}
	if len(files) > 0 {
		return head + parquetSelect(files, unionByName, t.PartitionColumns), nil
	}
	body, err := emptySelect(t)
	if err != nil {
		return "", err
	}
	return head + body, nil
}

// parquetSelect reads files, pinning the Hive partition keys' types. With
// unionByName their schemas are unioned by column name (files written
// before a column was added lack it); that makes DuckDB open every file to
// bind, so it is asked for only when the manifest says the files' schemas
// differ.
func parquetSelect(files []string, unionByName bool, parts []Column) string {
	var b strings.Builder
	b.WriteString("SELECT * FROM read_parquet([")
	for i, f := range files {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(sqlString(filepath.ToSlash(f)))
	}
	b.WriteString("], hive_partitioning = true")
	if unionByName {
		b.WriteString(", union_by_name = true")
	}
	if len(parts) > 0 {
		b.WriteString(", hive_types = {")
		for i, p := range parts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(sqlString(p.Name) + ": " + sqlString(p.Type))
		}
		b.WriteString("}")
	}
	b.WriteString(")")
	return b.String()
}

// emptySelect is a relation with t's declared columns, then its partition
// columns (skipping names already declared), and no row.
func emptySelect(t Table) (string, error) {
	seen := map[string]bool{}
	var cols []string
	for _, c := range append(append([]Column(nil), t.Columns...), t.PartitionColumns...) {
		if seen[strings.ToLower(c.Name)] {
			continue
		}
		seen[strings.ToLower(c.Name)] = true
		cols = append(cols, "CAST(NULL AS "+c.Type+") AS "+sqlIdent(c.Name))
	}
	if len(cols) == 0 {
		return "", errors.New("no files yet and no declared columns")
	}
	return "SELECT " + strings.Join(cols, ", ") + " WHERE false", nil
}

// checkColumn rejects names and types that cannot be spliced into DDL. A type
// is spliced unquoted, so it may hold only letters, digits, '_', spaces,
// commas, brackets and balanced parentheses: enough for "DECIMAL(18, 3)",
// "VARCHAR[]" or "STRUCT(a INTEGER, b VARCHAR)".
func checkColumn(c Column) error {
	if c.Name == "" || strings.ContainsRune(c.Name, 0) {
		return fmt.Errorf("invalid column name %q", c.Name)
	}
	depth := 0
	for _, r := range c.Type {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == '_' || r == ' ' || r == ',' || r == '[' || r == ']' || r == '"',
			r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		default:
			depth = -1
		}
		if depth < 0 {
			break
		}
	}
	if c.Type == "" || depth != 0 || strings.Count(c.Type, `"`)%2 != 0 {
		return fmt.Errorf("invalid type %q for column %q", c.Type, c.Name)
	}
	return nil
}
