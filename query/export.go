package query

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/sluice-dev/sluice/auth"
)

// ExportFormats are the files Export writes, by file name: the result as
// Parquet (zstd), CSV with a header line, and NDJSON (one JSON object per
// row).
var ExportFormats = map[string]string{
	"result.parquet": "(FORMAT parquet, COMPRESSION zstd)",
	"result.csv":     "(FORMAT csv, HEADER true)",
	"result.ndjson":  "(FORMAT json)",
}

// Export is what Export wrote and read.
type Export struct {
	Rows         int64
	FilesScanned int
	SkippedFiles []SkippedFile // left out as unreadable (Config.SkipUnreadable)
	FilesPruned  int
	BytesScanned int64
}

// ErrBytesScannedLimit is returned (wrapped, a user error) by Export when
// the files a statement would read, after pruning, exceed its limit.
var ErrBytesScannedLimit = &userError{msg: "the query would scan more than its bytes-scanned limit"}

// Export runs one SELECT statement as the principal of ctx would run it
// through Query (same authorization, sandbox and pruning), with no row or
// result-size limit and no timeout but ctx's, writing its whole result
// into dir as every file of ExportFormats. DuckDB writes the files itself
// (COPY), so the result never passes through Go's memory. dir must lie
// inside Config.TempDir (the one writable directory of the sandbox). If
// maxScan > 0 and the statement's files, once pruned, hold more bytes,
// nothing runs and the error wraps ErrBytesScannedLimit.
//
// Only the engine's own statements write: the user's text is first
// prepared as SELECT * FROM (<text>), which must be one SELECT, and only
// then embedded in COPY (...) TO.
func (e *Engine) Export(ctx context.Context, sqlText, dir string, maxScan int64) (Export, error) {
	var out Export
	dir, err := filepath.Abs(dir)
	if err != nil {
		return out, fmt.Errorf("cannot resolve the result directory: %w", err)
	}
	if e.cfg.TempDir == "" || !strings.HasPrefix(dir, e.cfg.TempDir+string(filepath.Separator)) {
		return out, fmt.Errorf("BUG: cannot export a result into %q: not inside the engine's temp dir %q", dir, e.cfg.TempDir)
	}
	if err := auth.FromContext(ctx).AllowQuery(); err != nil {
		return out, err
	}
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return out, fmt.Errorf("cannot get duckdb connection: %w", err)
	}
	defer conn.Close()
	if err := e.refresh(ctx); err != nil {
		e.cfg.Log.Warn("cannot refresh the tables before an export", "err", err)
	}
	if err := authorize(ctx, conn, sqlText); err != nil {
		return out, err
	}
	scan, unbind, err := e.bind(ctx, conn, sqlText, e.known(identifiers(sqlText)))
	defer unbind()
	if err != nil {
		return out, err
	}
	out.FilesScanned, out.FilesPruned, out.BytesScanned = scan.files, scan.pruned, scan.bytes
	if maxScan > 0 && scan.bytes > maxScan {
		return out, fmt.Errorf("%w: it would read %d bytes in %d files after pruning, over the limit of %d (narrow its WHERE on the partition or time columns, or raise --async-query-max-scan)",
			ErrBytesScannedLimit, scan.bytes, scan.files, maxScan)
	}
	body := "SELECT * FROM (\n" + strings.TrimRight(sqlText, " \t\r\n;") + "\n)"
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("cannot use driver connection of type %T", dc)
		}
		stmt, err := prepareOne(c, body)
		if err != nil {
			return err
		}
		err = checkStatement(stmt)
		if typ, _ := stmt.StatementType(); err == nil && typ != duckdb.STATEMENT_TYPE_SELECT {
			err = &userError{msg: "only SELECT statements can run as async queries"}
		}
		_ = stmt.Close()
		if err != nil {
			return err
		}
		parquet := filepath.Join(dir, "result.parquet")
		if out.Rows, err = copyTo(ctx, c, body, parquet, ExportFormats["result.parquet"]); err != nil {
			return err
		}
		// The other formats from the Parquet file, not by running the query again.
		for name, opts := range ExportFormats {
			if name == "result.parquet" {
				continue
			}
			if _, err := copyTo(ctx, c, "SELECT * FROM read_parquet("+sqlString(parquet)+")", filepath.Join(dir, name), opts); err != nil {
				return err
			}
		}
		return nil
	})
	if bad, ok := unreadableIn(err, scan.paths); ok {
		return out, bad
	}
	out.SkippedFiles = scan.skipped
	return out, err
}

// copyTo runs COPY (query) TO path opts and returns the rows written.
func copyTo(ctx context.Context, c *duckdb.Conn, query, path, opts string) (int64, error) {
	ps, err := c.Prepare("COPY (" + query + ") TO " + sqlString(path) + " " + opts)
	if err != nil {
		return 0, err
	}
	defer ps.Close()
	res, err := ps.(*duckdb.Stmt).ExecContext(ctx, nil)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
