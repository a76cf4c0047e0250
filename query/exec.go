package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// allowedStatements are the statement kinds a user may run. DESCRIBE, SHOW,
// SUMMARIZE, FROM-first queries and PRAGMA table_info are SELECTs to DuckDB.
var allowedStatements = map[duckdb.StmtType]bool{
	duckdb.STATEMENT_TYPE_SELECT:  true,
	duckdb.STATEMENT_TYPE_EXPLAIN: true,
}

var statementNames = map[duckdb.StmtType]string{
	duckdb.STATEMENT_TYPE_INSERT:       "INSERT",
	duckdb.STATEMENT_TYPE_UPDATE:       "UPDATE",
	duckdb.STATEMENT_TYPE_DELETE:       "DELETE",
	duckdb.STATEMENT_TYPE_PREPARE:      "PREPARE",
	duckdb.STATEMENT_TYPE_CREATE:       "CREATE",
	duckdb.STATEMENT_TYPE_EXECUTE:      "EXECUTE",
	duckdb.STATEMENT_TYPE_ALTER:        "ALTER",
	duckdb.STATEMENT_TYPE_TRANSACTION:  "transaction",
	duckdb.STATEMENT_TYPE_COPY:         "COPY",
	duckdb.STATEMENT_TYPE_ANALYZE:      "ANALYZE",
	duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET VARIABLE",
	duckdb.STATEMENT_TYPE_CREATE_FUNC:  "CREATE FUNCTION",
	duckdb.STATEMENT_TYPE_DROP:         "DROP",
	duckdb.STATEMENT_TYPE_EXPORT:       "EXPORT",
	duckdb.STATEMENT_TYPE_PRAGMA:       "PRAGMA",
	duckdb.STATEMENT_TYPE_VACUUM:       "VACUUM",
	duckdb.STATEMENT_TYPE_CALL:         "CALL",
	duckdb.STATEMENT_TYPE_SET:          "SET/RESET",
	duckdb.STATEMENT_TYPE_LOAD:         "INSTALL/LOAD",
	duckdb.STATEMENT_TYPE_ATTACH:       "ATTACH",
	duckdb.STATEMENT_TYPE_DETACH:       "DETACH",
}

// run executes one statement on conn and collects its rows. It works at
// the driver level (sql.Conn.Raw) because duckdb-go's Conn.Prepare is the
// one entry point that refuses several statements instead of silently
// executing all but the last.
func (e *Engine) run(ctx context.Context, conn *sql.Conn, sqlText string) (*Result, error) {
	var res *Result
	err := e.withStmt(conn, sqlText, func(c *duckdb.Conn, stmt *duckdb.Stmt, wrapped bool) (err error) {
		if wrapped && !e.smallRows(stmt) {
			res, err = e.executeSpilled(ctx, c, stmt, sqlText)
			return err
		}
		res, err = e.execute(ctx, stmt)
		return err
	})
	return res, err
}

// withStmt prepares sqlText on conn's driver connection (see prepare) and
// hands the statement to fn, closing it after.
func (e *Engine) withStmt(conn *sql.Conn, sqlText string, fn func(c *duckdb.Conn, stmt *duckdb.Stmt, wrapped bool) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("cannot use driver connection of type %T", dc)
		}
		stmt, wrapped, err := e.prepare(c, sqlText)
		if err != nil {
			return err
		}
		defer stmt.Close()
		return fn(c, stmt, wrapped)
	})
}

// fixedWidth are the types whose values take at most 16 bytes.
var fixedWidth = map[duckdb.Type]bool{
	duckdb.TYPE_BOOLEAN: true, duckdb.TYPE_TINYINT: true, duckdb.TYPE_SMALLINT: true, duckdb.TYPE_INTEGER: true,
	duckdb.TYPE_BIGINT: true, duckdb.TYPE_UTINYINT: true, duckdb.TYPE_USMALLINT: true, duckdb.TYPE_UINTEGER: true,
	duckdb.TYPE_UBIGINT: true, duckdb.TYPE_HUGEINT: true, duckdb.TYPE_UHUGEINT: true, duckdb.TYPE_FLOAT: true,
	duckdb.TYPE_DOUBLE: true, duckdb.TYPE_DATE: true, duckdb.TYPE_TIME: true, duckdb.TYPE_TIME_TZ: true,
	duckdb.TYPE_TIMESTAMP: true, duckdb.TYPE_TIMESTAMP_S: true, duckdb.TYPE_TIMESTAMP_MS: true,
	duckdb.TYPE_TIMESTAMP_NS: true, duckdb.TYPE_TIMESTAMP_TZ: true, duckdb.TYPE_INTERVAL: true,
	duckdb.TYPE_DECIMAL: true, duckdb.TYPE_UUID: true,
}

// smallRows reports whether stmt's whole result (MaxRows+1 rows of only
// fixed-width columns) fits MaxResultBytes even as converted values: then
// the driver may hold it, and the temporary table is not needed (counts
// and other aggregates, the common case, skip its cost).
func (e *Engine) smallRows(stmt *duckdb.Stmt) bool {
	infos := columnInfos(stmt)
	for _, info := range infos {
		if info == nil || !fixedWidth[info.InternalType()] {
			return false
		}
	}
	return int64(len(infos))*int64(e.cfg.MaxRows+1)*48 <= e.cfg.MaxResultBytes
}

var resultSeq atomic.Int64

// executeSpilled runs a query (one that can be wrapped in a SELECT) into a
// temporary table of the connection, then reads that table back in pages
// until MaxRows or MaxResultBytes. duckdb-go materializes a whole result
// outside DuckDB's memory limit (10,000 rows of 200 kB took 2.4 GB); a
// temporary table is DuckDB's own storage, held within --query-memory and
// spilled to its temp directory beyond, and a page holds about
// resultPageBytes. The table is dropped at the end, whatever happened.
func (e *Engine) executeSpilled(ctx context.Context, c *duckdb.Conn, stmt *duckdb.Stmt, sqlText string) (*Result, error) {
	sp, err := e.spill(ctx, c, stmt, sqlText, int64(e.cfg.MaxRows+1))
	if err != nil {
		return nil, err
	}
	defer sp.drop()
	res := &Result{Rows: [][]any{}}
	keep := e.collect(res)
	err = sp.pages(ctx, int64(e.cfg.MaxRows+1), func(cols []ResultColumn, rows [][]any) (int64, error) {
		res.Columns = cols
		for _, row := range rows {
			if keep.add(row); res.Truncated {
				return 0, errStopPages
			}
		}
		return keep.size / int64(max(len(res.Rows), 1)), nil
	})
	if err != nil && !errors.Is(err, errStopPages) {
		return nil, err
	}
	res.RowCount = len(res.Rows)
	return res, nil
}

// spilled is a query's result written to a temporary table of its
// connection (see executeSpilled).
type spilled struct {
	e          *Engine
	c          *duckdb.Conn
	table      string
	names      []string // the result's column names
	infos      []duckdb.TypeInfo
	cols       []ResultColumn
	selectList string
	jsonCols   map[int]bool
}

// errStopPages ends spilled.pages early without an error.
var errStopPages = errors.New("stop")

// spill runs stmt's query (sqlText) into a temporary table, at most limit
// rows (0: all); drop removes it.
func (e *Engine) spill(ctx context.Context, c *duckdb.Conn, stmt *duckdb.Stmt, sqlText string, limit int64) (*spilled, error) {
	n, err := stmt.ColumnCount()
	if err != nil {
		return nil, err
	}
	sp := &spilled{e: e, c: c, infos: columnInfos(stmt), names: make([]string, n), jsonCols: map[int]bool{}}
	aliases := make([]string, n)
	for i := range n {
		if sp.names[i], err = stmt.ColumnName(i); err != nil {
			return nil, err
		}
		aliases[i] = "c" + strconv.Itoa(i) // the result may repeat a name; a table cannot
	}
	sp.table = "temp.main.__sluice_result_" + strconv.FormatInt(resultSeq.Add(1), 10)
	body := strings.TrimRight(sqlText, " \t\r\n;")
	ctas := "CREATE TEMP TABLE " + sp.table + " AS SELECT * FROM (\n" + body + "\n) AS t(" + strings.Join(aliases, ", ") + ")"
	if limit > 0 {
		ctas += " LIMIT " + strconv.FormatInt(limit, 10)
	}
	if err := execOne(ctx, c, ctas); err != nil {
		sp.drop()
		return nil, err
	}
	// JSON columns are read as text and decoded here with exact numbers:
	// the driver's own decoding makes every number a float64.
	if _, sp.cols, _, err = readPage(ctx, c, sp.table, "*", 0, 0, sp.infos, nil); err != nil {
		sp.drop()
		return nil, err
	}
	list := make([]string, len(sp.cols))
	for i, col := range sp.cols {
		list[i] = aliases[i]
		if col.Type == "JSON" {
			list[i] = aliases[i] + "::VARCHAR AS " + aliases[i]
			sp.jsonCols[i] = true
		}
		sp.cols[i].Name = sp.names[i]
	}
	sp.selectList = strings.Join(list, ", ")
	return sp, nil
}

// drop removes the table, whatever happened (not with the query's ctx: it
// may be done, and the table would stay with the connection).
func (sp *spilled) drop() {
	if err := execOne(context.Background(), sp.c, "DROP TABLE IF EXISTS "+sp.table); err != nil {
		sp.e.cfg.Log.Warn("cannot drop a query's result table", "table", sp.table, "err", err)
	}
}

// pages reads the table in pages of about resultPageBytes (the first of
// one row, at most maxPage rows) and hands each to fn, which returns the
// average size of a row so far (0: unknown); fn is called at least once,
// with no rows for an empty result.
func (sp *spilled) pages(ctx context.Context, maxPage int64, fn func(cols []ResultColumn, rows [][]any) (int64, error)) error {
	from, page := int64(0), int64(1024)
	for {
		rows, _, done, err := readPage(ctx, sp.c, sp.table, sp.selectList, from, page, sp.infos, sp.jsonCols)
		if err != nil {
			return err
		}
		avg, err := fn(sp.cols, rows)
		if err != nil || done {
			return err
		}
		from += page
		page = min(max(resultPageBytes/max(avg, 1), 1), maxPage)
	}
}

// resultPageBytes is about what one page of a spilled result holds.
const resultPageBytes = 4 << 20

// readPage reads rows [from, from+n) of a spilled result (done: there are
// no more).
func readPage(ctx context.Context, c *duckdb.Conn, table, selectList string, from, n int64, infos []duckdb.TypeInfo, jsonCols map[int]bool) (out [][]any, cols []ResultColumn, done bool, err error) {
	q := fmt.Sprintf("SELECT %s FROM %s WHERE rowid >= %d AND rowid < %d ORDER BY rowid", selectList, table, from, from+n)
	ps, err := c.Prepare(q)
	if err != nil {
		return nil, nil, false, err
	}
	defer ps.Close()
	rows, err := ps.(*duckdb.Stmt).QueryContext(ctx, nil)
	if err != nil {
		return nil, nil, false, err
	}
	defer rows.Close()
	cols = resultColumns(rows)
	dest := make([]driver.Value, len(cols))
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, false, err
		}
		row := convertRow(dest, infos)
		for i := range jsonCols {
			if text, ok := row[i].(string); ok {
				row[i] = exactJSON(text)
			}
		}
		out = append(out, row)
	}
	return out, cols, int64(len(out)) < n, nil
}

// exactJSON decodes JSON text keeping numbers as written (json.Number);
// text that is not JSON stays text.
func exactJSON(text string) any {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return text
	}
	return v
}

// execOne runs one statement of the engine's own on c.
func execOne(ctx context.Context, c *duckdb.Conn, q string) error {
	ps, err := c.Prepare(q)
	if err != nil {
		return err
	}
	defer ps.Close()
	_, err = ps.(*duckdb.Stmt).ExecContext(ctx, nil)
	return err
}

// prepare prepares sqlText, preferably wrapped in a LIMIT (see the package
// doc). Errors are those of the statement as the user wrote it.
func (e *Engine) prepare(c *duckdb.Conn, sqlText string) (stmt *duckdb.Stmt, wrapped bool, err error) {
	stmt, err = prepareOne(c, wrapLimit(sqlText, e.cfg.MaxRows+1))
	wrapped = err == nil
	if err != nil {
		stmt, err = prepareOne(c, sqlText)
	}
	if err != nil {
		return nil, false, err
	}
	if err := checkStatement(stmt); err != nil {
		_ = stmt.Close()
		return nil, false, err
	}
	return stmt, wrapped, nil
}

// prepareOne prepares exactly one statement: duckdb-go's Conn.Prepare
// refuses an empty text or several statements, with untyped errors that are
// both the request's fault.
func prepareOne(c *duckdb.Conn, text string) (*duckdb.Stmt, error) {
	s, err := c.Prepare(text)
	if err != nil {
		var de *duckdb.Error
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, &userError{msg: "exactly one SQL statement is required: " + flatten(err)}
	}
	return s.(*duckdb.Stmt), nil
}

// checkStatement refuses statement kinds that are not queries, and
// statements with parameters (the API has no way to pass their values).
func checkStatement(stmt *duckdb.Stmt) error {
	typ, err := stmt.StatementType()
	if err != nil {
		return err
	}
	if !allowedStatements[typ] {
		return &userError{msg: fmt.Sprintf("%s statements are not allowed: only SELECT (including DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN", statementName(typ))}
	}
	if stmt.NumInput() > 0 {
		return &userError{msg: "query parameters ($1, ?) are not supported: write the values into the SQL"}
	}
	return nil
}

// wrapLimit wraps a query in SELECT * FROM (...) LIMIT n so that DuckDB stops
// producing rows early. Newlines keep a trailing "-- comment" from hiding the
// closing parenthesis; trailing semicolons are dropped. A text that is not a
// single query fails to prepare in this form, and is then prepared as is.
func wrapLimit(sqlText string, n int) string {
	body := strings.TrimRight(sqlText, " \t\r\n;")
	return "SELECT * FROM (\n" + body + "\n) LIMIT " + strconv.Itoa(n)
}

func statementName(t duckdb.StmtType) string {
	if n, ok := statementNames[t]; ok {
		return n
	}
	return fmt.Sprintf("statement type %d", t)
}

// flatten renders an error on one line (errors.Join uses newlines).
func flatten(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", ": ")
}

// execute runs a prepared statement and converts up to MaxRows rows.
func (e *Engine) execute(ctx context.Context, stmt *duckdb.Stmt) (*Result, error) {
	infos := columnInfos(stmt)
	rows, err := stmt.QueryContext(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	res := &Result{Columns: resultColumns(rows), Rows: [][]any{}}
	c := e.collect(res)
	dest := make([]driver.Value, len(res.Columns))
	for !res.Truncated {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		c.add(convertRow(dest, infos))
	}
	res.RowCount = len(res.Rows)
	return res, nil
}

// collector adds rows to a result up to MaxRows and MaxResultBytes; the
// row that would pass either limit cuts the result instead, naming it.
type collector struct {
	res      *Result
	size     int64 // of the rows kept, as valueSize counts
	maxRows  int
	maxBytes int64
}

func (e *Engine) collect(res *Result) *collector {
	return &collector{res: res, maxRows: e.cfg.MaxRows, maxBytes: e.cfg.MaxResultBytes}
}

// add keeps row, or cuts the result (Truncated) if it does not fit.
func (c *collector) add(row []any) {
	if len(c.res.Rows) == c.maxRows {
		c.res.Truncated = true
		c.res.TruncatedBy = fmt.Sprintf("the %d-row limit", c.maxRows)
		return
	}
	n := valueSize(row)
	if c.size+n > c.maxBytes {
		c.res.Truncated = true
		c.res.TruncatedBy = fmt.Sprintf("the %d-byte result limit (--query-result-bytes)", c.maxBytes)
		return
	}
	c.size += n
	c.res.Rows = append(c.res.Rows, row)
}

// valueSize estimates the memory a converted value holds (and about what
// it takes as JSON): strings and bytes their length, other scalars 8, lists
// and objects their elements plus 16 each.
func valueSize(v any) int64 {
	switch x := v.(type) {
	case string:
		return int64(len(x)) + 16
	case []byte:
		return int64(len(x)) + 24
	case []any:
		n := int64(24)
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	case map[string]any:
		n := int64(48)
		for k, e := range x {
			n += int64(len(k)) + 16 + valueSize(e)
		}
		return n
	default:
		return 16
	}
}

// columnInfos returns each result column's type information, nil where the
// driver cannot describe it; it guides conversion of DATE, TIME and UUID
// values, also inside lists, structs and maps.
func columnInfos(stmt *duckdb.Stmt) []duckdb.TypeInfo {
	n, err := stmt.ColumnCount()
	if err != nil {
		return nil
	}
	infos := make([]duckdb.TypeInfo, n)
	for i := range infos {
		if info, err := stmt.ColumnTypeInfo(i); err == nil {
			infos[i] = info
		}
	}
	return infos
}

func resultColumns(rows driver.Rows) []ResultColumn {
	names := rows.Columns()
	typed, _ := rows.(driver.RowsColumnTypeDatabaseTypeName)
	cols := make([]ResultColumn, len(names))
	for i, name := range names {
		cols[i].Name = name
		if typed != nil {
			cols[i].Type = typed.ColumnTypeDatabaseTypeName(i)
		}
	}
	return cols
}
