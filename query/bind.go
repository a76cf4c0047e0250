package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
)

// runBound runs sqlText on one connection, after binding each table it
// names to a temporary view of that connection over the table's files
// (bind); the views are dropped when it ends, whatever happened.
func (e *Engine) runBound(ctx context.Context, sqlText string) (*Result, error) {
	return e.runBoundWith(ctx, sqlText, func(conn *sql.Conn) (*Result, error) { return e.run(ctx, conn, sqlText) })
}

// runBoundWith is runBound with run executing the statement on conn.
func (e *Engine) runBoundWith(ctx context.Context, sqlText string, run func(conn *sql.Conn) (*Result, error)) (*Result, error) {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot get duckdb connection: %w", err)
	}
	defer conn.Close()
	if err := authorize(ctx, conn, sqlText); err != nil {
		return nil, err
	}
	for skips := 0; ; skips++ {
		res, scan, err := e.runBoundOnce(ctx, conn, sqlText, run)
		bad, unreadable := unreadableIn(err, scan.paths)
		switch {
		case err == nil:
			res.FilesScanned, res.FilesPruned, res.BytesScanned, res.SkippedFiles = scan.files, scan.pruned, scan.bytes, scan.skipped
			return res, nil
		case !unreadable:
			return nil, err
		case !e.cfg.SkipUnreadable || skips >= maxSkips || ctx.Err() != nil:
			return nil, bad
		}
		e.markUnreadable(bad) // and run again without it
	}
}

// runBoundOnce binds the statement's tables on conn, runs it and unbinds.
func (e *Engine) runBoundOnce(ctx context.Context, conn *sql.Conn, sqlText string, run func(conn *sql.Conn) (*Result, error)) (*Result, scanStats, error) {
	scan, unbind, err := e.bind(ctx, conn, sqlText, e.known(identifiers(sqlText)))
	defer unbind()
	if err != nil {
		return nil, scan, err
	}
	res, err := run(conn)
	return res, scan, err
}

type scanStats struct {
	files, pruned int
	bytes         int64
	paths         map[string]string // bound file → its table
	skipped       []SkippedFile     // left out: unreadable (SkipUnreadable)
}

// bind creates, on conn, a temporary view for each of tables over the
// files of it that the statement may need: the catalog's committed files
// less those the statement's predicates rule out (filtersFor). A table
// with no such file keeps its empty database-wide view. unbind drops the
// views and releases the files; it is never nil.
func (e *Engine) bind(ctx context.Context, conn *sql.Conn, sqlText string, tables []Table) (scanStats, func(), error) {
	var stats scanStats
	var created []string
	var releases []func()
	unbind := func() {
		for _, name := range created {
			// Not ctx: it may be done, and a view left behind would shadow
			// the table for the connection's next statement.
			if _, err := conn.ExecContext(context.Background(), "DROP VIEW IF EXISTS temp.main."+sqlIdent(name)); err != nil {
				_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // discard the connection
				break
			}
		}
		for _, r := range releases {
			r()
		}
	}
	if len(tables) == 0 {
		return stats, unbind, nil
	}
	infos := make(map[string]TableInfo, len(tables))
	for _, t := range tables {
		info := TableInfo{TimeColumn: t.TimeColumn, PartitionColumns: map[string]string{}}
		for _, c := range t.PartitionColumns {
			info.PartitionColumns[c.Name] = c.Type
		}
		infos[strings.ToLower(t.Name)] = info
	}
	filters, err := filtersFor(ctx, conn, sqlText, infos)
	if err != nil {
		return stats, unbind, err
	}
	for _, t := range tables {
		files, err := e.cat.Files(ctx, t.Name, filters[strings.ToLower(t.Name)].Keep)
		if err != nil {
			return stats, unbind, fmt.Errorf("cannot list the files of table %q: %w", t.Name, err)
		}
		if files.Release != nil {
			releases = append(releases, files.Release)
		}
		var skipped []SkippedFile
		files.Paths, skipped = e.skipUnreadable(t.Name, files.Paths)
		stats.skipped = append(stats.skipped, skipped...)
		if stats.paths == nil {
			stats.paths = map[string]string{}
		}
		for _, p := range files.Paths {
			stats.paths[p] = t.Name
		}
		stats.files += len(files.Paths)
		stats.pruned += files.Pruned
		stats.bytes += files.Bytes
		if len(files.Paths) == 0 {
			continue
		}
		if err := e.createFileView(ctx, conn, t, files); err != nil {
			return stats, unbind, err
		}
		created = append(created, t.Name)
	}
	return stats, unbind, nil
}

// createFileView creates t's temporary view over files, which must all lie
// inside t's directory (the sandbox's allowed directories).
func (e *Engine) createFileView(ctx context.Context, conn *sql.Conn, t Table, files Files) error {
	dir, err := e.checkTable(t)
	if err != nil {
		return fmt.Errorf("cannot expose table %q: %w", t.Name, err)
	}
	for _, p := range files.Paths {
		if !strings.HasPrefix(p, dir+"/") {
			return fmt.Errorf("cannot expose table %q: file %q is outside its directory", t.Name, p)
		}
	}
	ddl, err := viewDDL(t, files.Paths, files.UnionByName)
	if err != nil {
		return fmt.Errorf("cannot expose table %q: %w", t.Name, err)
	}
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("cannot create the view of table %q: %w", t.Name, err)
	}
	return nil
}

// identifiers returns the lower-cased identifiers of sqlText, quoted or
// not, skipping string literals and comments, as DuckDB lexes them. A name
// found here that is a table's is bound to that table's files: taking a
// column or alias of the same name for the table only costs a listing.
func identifiers(sqlText string) map[string]bool {
	out := map[string]bool{}
	s := sqlText
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			end := skipQuoted(s, i+1, '"', false)
			out[strings.ToLower(strings.ReplaceAll(s[i+1:max(end-1, i+1)], `""`, `"`))] = true
			i = end
		case skipNonCode(s, i) > i:
			i = skipNonCode(s, i)
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentStart(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '$') {
				j++
			}
			out[strings.ToLower(s[i:j])] = true
			i = j
		default:
			i++
		}
	}
	return out
}

// skipNonCode returns the index after the comment, string literal, quoted
// identifier or dollar-quoted string that starts at i, or i if none does.
func skipNonCode(s string, i int) int {
	switch c := s[i]; {
	case c == '-' && strings.HasPrefix(s[i:], "--"):
		return skipTo(s, i, "\n")
	case c == '/' && strings.HasPrefix(s[i:], "/*"):
		return skipComment(s, i)
	case c == '\'':
		return skipQuoted(s, i+1, '\'', i > 0 && (s[i-1] == 'e' || s[i-1] == 'E'))
	case c == '"':
		return skipQuoted(s, i+1, '"', false)
	case c == '$' && dollarTag(s[i:]) != "":
		tag := dollarTag(s[i:])
		return skipTo(s, i+len(tag), tag)
	}
	return i
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipTo returns the index after the next end at or after i+1 (len(s) if none).
func skipTo(s string, i int, end string) int {
	if j := strings.Index(s[i+1:], end); j >= 0 {
		return i + 1 + j + len(end)
	}
	return len(s)
}

// skipComment skips a nested /* */ comment starting at i.
func skipComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth, i = depth+1, i+2
		case strings.HasPrefix(s[i:], "*/"):
			depth, i = depth-1, i+2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// skipQuoted returns the index after the closing quote q of a literal whose
// body starts at i (a doubled quote is part of it; with backslash, \x too).
func skipQuoted(s string, i int, q byte, backslash bool) int {
	for i < len(s) {
		switch {
		case backslash && s[i] == '\\':
			i += 2
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i += 2
		case s[i] == q:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// dollarTag returns the $tag$ that s starts with, or "".
func dollarTag(s string) string {
	for j := 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '$':
			return s[:j+1]
		case !isIdentStart(c) && !(c >= '0' && c <= '9'):
			return ""
		}
	}
	return ""
}

// truncateSQL shortens a statement for the log.
func truncateSQL(s string) string {
	const max = 200
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
