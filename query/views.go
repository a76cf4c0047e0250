package query

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// viewState is what the engine knows about one table's view.
type viewState struct {
	dir      string // absolute Table.Dir the state was computed for
	hasFiles bool   // sticky: once a Parquet file was seen, no more walks
	ddl      string // CREATE statement of the installed view, "" if none
}

// parquetGlob matches the table's Parquet files at any depth, skipping names
// that start with '.' (writers' temporary files); *.tmp files never match.
const parquetGlob = "/**/[!.]*.parquet"

// refresh brings the views in line with the catalog: it creates views for new
// tables, replaces a view whose table gained its first file or whose declared
// columns changed, and drops views of tables gone from the catalog. With
// recheck, tables known to have files are walked again (their files may have
// been deleted). It reports whether any view changed, and the problems met,
// one per table; a failing table does not keep the others from refreshing.
func (e *Engine) refresh(ctx context.Context, recheck bool) (bool, error) {
	tables := e.cat.Tables()
	e.mu.Lock()
	defer e.mu.Unlock()

	var errs []error
	changed := false
	seen := make(map[string]bool, len(tables))
	for _, t := range tables {
		key := strings.ToLower(t.Name) // DuckDB identifiers are case-insensitive
		seen[key] = true
		c, err := e.refreshTable(ctx, key, t, recheck)
		changed = changed || c
		if err != nil {
			errs = append(errs, err)
			if st := e.views[key]; st != nil && e.dropStale(ctx, t.Name, st) {
				changed = true
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
		changed = true
	}
	return changed, errors.Join(errs...)
}

func (e *Engine) refreshTable(ctx context.Context, key string, t Table, recheck bool) (bool, error) {
	dir, err := e.checkTable(t)
	if err != nil {
		return false, fmt.Errorf("cannot expose table %q: %w", t.Name, err)
	}
	st := e.views[key]
	if st == nil || st.dir != dir {
		st = &viewState{dir: dir, ddl: stateDDL(st)}
		e.views[key] = st
	}
	if t.Files != nil {
		for _, f := range t.Files {
			if !strings.HasPrefix(f, dir+string(filepath.Separator)) {
				return false, fmt.Errorf("cannot expose table %q: file %q is outside its directory", t.Name, f)
			}
		}
		st.hasFiles = len(t.Files) > 0
	} else if !st.hasFiles || recheck {
		has, err := hasParquet(dir)
		if err != nil {
			return false, fmt.Errorf("cannot list files of table %q: %w", t.Name, err)
		}
		st.hasFiles = has
	}
	ddl, err := viewDDL(t, dir, st.hasFiles)
	if err != nil {
		return false, fmt.Errorf("cannot expose table %q: %w", t.Name, err)
	}
	if ddl == st.ddl {
		return false, nil
	}
	if _, err := e.db.ExecContext(ctx, ddl); err != nil {
		return false, fmt.Errorf("cannot create view %q: %w", t.Name, err)
	}
	st.ddl = ddl
	return true, nil
}

// dropStale drops the view left from an earlier state once the table can no
// longer be exposed: an outdated empty view would answer 0 rows where the
// table has files, while a missing one makes the query fail with the reason
// attached.
func (e *Engine) dropStale(ctx context.Context, name string, st *viewState) bool {
	if st.ddl == "" {
		return false
	}
	if _, err := e.db.ExecContext(ctx, "DROP VIEW IF EXISTS "+sqlIdent(name)); err != nil {
		return false
	}
	st.ddl = ""
	return true
}

func stateDDL(st *viewState) string {
	if st == nil {
		return ""
	}
	return st.ddl
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

// errFound stops the walk of hasParquet at the first Parquet file.
var errFound = errors.New("found")

// hasParquet reports whether dir holds at least one *.parquet file not
// starting with '.', at any depth. A missing dir holds none.
func hasParquet(dir string) (bool, error) {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // dir, or a sub dir, vanished meanwhile
			}
			return err
		}
		if !d.IsDir() && isParquetName(d.Name()) {
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return true, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, err
	}
	return false, nil
}

func isParquetName(name string) bool {
	return strings.HasSuffix(name, ".parquet") && !strings.HasPrefix(name, ".")
}

// viewDDL renders the CREATE statement of t's view: over its Parquet files
// when it has some, else an empty relation with the declared columns.
func viewDDL(t Table, dir string, hasFiles bool) (string, error) {
	for _, c := range append(append([]Column(nil), t.Columns...), t.PartitionColumns...) {
		if err := checkColumn(c); err != nil {
			return "", err
		}
	}
	head := "CREATE OR REPLACE VIEW " + sqlIdent(t.Name) + " AS "
	if hasFiles {
		return head + parquetSelect(dir, t.Files, t.PartitionColumns), nil
	}
	body, err := emptySelect(t)
	if err != nil {
		return "", err
	}
	return head + body, nil
}

// parquetSelect reads files (or, if nil, every Parquet file under dir),
// unioning their schemas by column name (files written before a column was
// added lack it) and pinning the Hive partition keys' types.
func parquetSelect(dir string, files []string, parts []Column) string {
	var b strings.Builder
	b.WriteString("SELECT * FROM read_parquet(")
	if files == nil {
		b.WriteString(sqlString(filepath.ToSlash(dir) + parquetGlob))
	} else {
		b.WriteString("[")
		for i, f := range files {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(sqlString(filepath.ToSlash(f)))
		}
		b.WriteString("]")
	}
	b.WriteString(", hive_partitioning = true, union_by_name = true")
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
