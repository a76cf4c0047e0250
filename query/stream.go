package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/sluice-dev/sluice/auth"
)

// Stream runs one statement as Query does (same checks, sandbox, timeout
// and query slot) but without the MaxRows cut: the result is written to a
// temporary table in DuckDB's storage (within the memory limit, spilled
// to TempDir beyond) and handed to fn page by page, each page about 4 MiB
// of rows, so what the process holds is one page whatever the result's
// size. fn is called at least once (with no rows for an empty result),
// always with the columns; an error from fn ends the stream with it.
//
// MaxStreamRows, when set, is the most rows a stream may have: a larger
// result fails with an error for which IsUserError is true before fn sees
// any row, never a silent cut. The query slot and a connection are held
// until fn has seen the last page, and the timeout covers the whole
// stream, so a slow reader ends with a timeout. Statements that cannot be
// wrapped in a SELECT (EXPLAIN) are refused.
//
// The returned Result has no rows: RowCount says how many were streamed.
func (e *Engine) Stream(ctx context.Context, sqlText string, fn func(page *Result) error) (*Result, error) {
	start := time.Now()
	ctx, done, err := e.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	setupErr := e.refresh(ctx)
	res, err := e.runBoundWith(ctx, sqlText, func(conn *sql.Conn) (*Result, error) { return e.stream(ctx, conn, sqlText, fn) })
	if err != nil {
		return nil, e.queryFailure(ctx, err, setupErr)
	}
	e.logQuery("query stream", start, res, sqlText)
	return res, nil
}

// admit does what every query does before it runs: it charges the key's
// usage plan (HTTP 429, SQLSTATE 53400), starts the timeout and takes a
// query slot (waiting within the timeout). done releases both.
func (e *Engine) admit(ctx context.Context) (_ context.Context, done func(), err error) {
	if err := auth.FromContext(ctx).AllowQuery(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	e.waiting.Add(1) // the queue length the metrics show
	defer e.waiting.Add(-1)
	select {
	case e.slots <- struct{}{}:
		return ctx, func() { <-e.slots; cancel() }, nil
	case <-ctx.Done():
		err := e.queryFailure(ctx, fmt.Errorf("waited for one of the %d query slots (--query-concurrency): %w", e.cfg.MaxConcurrent, ctx.Err()), nil)
		cancel()
		return nil, nil, err
	}
}

// logQuery writes a finished query's line and sets its elapsed time.
func (e *Engine) logQuery(msg string, start time.Time, res *Result, sqlText string) {
	res.ElapsedMs = float64(time.Since(start).Microseconds()) / 1000
	e.cfg.Log.Info(msg, "elapsed_ms", res.ElapsedMs, "rows", res.RowCount, "files_scanned", res.FilesScanned,
		"files_pruned", res.FilesPruned, "bytes_scanned", res.BytesScanned, "sql", truncateSQL(sqlText))
}

func (e *Engine) stream(ctx context.Context, conn *sql.Conn, sqlText string, fn func(page *Result) error) (*Result, error) {
	res := &Result{}
	err := e.withStmt(conn, sqlText, func(c *duckdb.Conn, stmt *duckdb.Stmt, wrapped bool) error {
		if !wrapped {
			return &userError{msg: "only a query (SELECT) can be streamed"}
		}
		limit := int64(0)
		if e.cfg.MaxStreamRows > 0 {
			limit = e.cfg.MaxStreamRows + 1
		}
		sp, err := e.spill(ctx, c, stmt, sqlText, limit)
		if err != nil {
			return err
		}
		defer sp.drop()
		if limit > 0 {
			if err := e.checkStreamRows(ctx, sp); err != nil {
				return err
			}
		}
		var size int64
		return sp.pages(ctx, 1<<20, func(cols []ResultColumn, rows [][]any) (int64, error) {
			for _, r := range rows {
				size += valueSize(r)
			}
			res.RowCount += len(rows)
			return size / int64(max(res.RowCount, 1)), fn(&Result{Columns: cols, Rows: rows, RowCount: len(rows)})
		})
	})
	return res, err
}

// checkStreamRows fails a stream whose result has more than MaxStreamRows
// rows (the table holds at most one more).
func (e *Engine) checkStreamRows(ctx context.Context, sp *spilled) error {
	ps, err := sp.c.Prepare("SELECT count(*) FROM " + sp.table)
	if err != nil {
		return err
	}
	defer ps.Close()
	rows, err := ps.(*duckdb.Stmt).QueryContext(ctx, nil)
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return err
	}
	if n, _ := dest[0].(int64); n > e.cfg.MaxStreamRows {
		return &userError{msg: fmt.Sprintf("the result has more than %d rows, the most a stream may have (MaxStreamRows)", e.cfg.MaxStreamRows)}
	}
	return nil
}
