package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("cannot use driver connection of type %T", dc)
		}
		stmt, err := e.prepare(c, sqlText)
		if err != nil {
			return err
		}
		defer stmt.Close()
		res, err = e.execute(ctx, stmt)
		return err
	})
	return res, err
}

// prepare prepares sqlText, preferably wrapped in a LIMIT (see the package
// doc). Errors are those of the statement as the user wrote it.
func (e *Engine) prepare(c *duckdb.Conn, sqlText string) (*duckdb.Stmt, error) {
	stmt, err := prepareOne(c, wrapLimit(sqlText, e.cfg.MaxRows+1))
	if err != nil {
		stmt, err = prepareOne(c, sqlText)
	}
	if err != nil {
		return nil, err
	}
	if err := checkStatement(stmt); err != nil {
		_ = stmt.Close()
		return nil, err
	}
	return stmt, nil
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
	dest := make([]driver.Value, len(res.Columns))
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(res.Rows) == e.cfg.MaxRows {
			res.Truncated = true
			break
		}
		res.Rows = append(res.Rows, convertRow(dest, infos))
	}
	res.RowCount = len(res.Rows)
	return res, nil
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
