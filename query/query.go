// Package query is sluice's SQL query service: it exposes every table of the
// catalog as a DuckDB view over the table's Hive-partitioned Parquet files and
// runs user SQL against those views inside a locked-down DuckDB instance.
//
// Design trade-offs, in short:
//
//   - One in-process DuckDB database (in memory) serves all queries through a
//     *sql.DB pool; views are database-level objects, so a view created on one
//     connection is visible to all of them.
//   - Views are refreshed lazily, right before each query, from Catalog.Tables.
//     A table without any Parquet file gets an empty, typed view so that
//     "select count(*) from logs" answers 0 instead of failing with "no files
//     found". Once a table has files it is not walked again (files are only
//     ever added), except after a query fails with an IO error, which is what
//     DuckDB raises when the files vanished (e.g. retention deleted them).
//   - The DuckDB configuration is sandboxed and then locked (see New), and on
//     top of that only SELECT-like and EXPLAIN statements are executed: DuckDB
//     lets COPY write into allowed directories, so a file sandbox alone would
//     let a user plant Parquet files inside a table.
//   - duckdb-go materialises a result completely before the first row can be
//     read. To keep "select * from logs" from materialising a whole table,
//     a query is first tried wrapped as SELECT * FROM (<sql>) LIMIT MaxRows+1,
//     and run as written only if the wrapped form does not prepare (EXPLAIN,
//     a trailing comment after ';', ...). The wrapper is visible in two
//     corner cases: duplicate output names get DuckDB's "_1" suffixes, and an
//     untyped NULL column is typed INTEGER. Order (ORDER BY) is preserved.
//   - One statement per request: duckdb-go's Conn.Prepare refuses several
//     statements without executing any, so the check costs nothing extra.
//   - Timeouts rely on duckdb-go interrupting the connection when the context
//     ends; it re-sends the interrupt every 500ms, so a timed-out query stops
//     within about Timeout+0.5s. Preparing (parsing and binding, which lists
//     and reads Parquet footers) is not interruptible.
package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Column is a table column as the catalog declares it, with its DuckDB SQL
// type (e.g. "TIMESTAMP", "VARCHAR", "JSON", "BIGINT", "INTEGER", "DOUBLE",
// "BOOLEAN", "BLOB", "DATE", "FLOAT").
type Column struct {
	Name string
	Type string
}

// Table is one queryable table: its name (a SQL identifier), the local
// directory holding its Hive-partitioned Parquet files, and its declared
// columns (used when no file exists yet, so `select count(*) from logs`
// returns 0 instead of a "no files" error).
//
// PartitionColumns are the Hive partition keys present in paths, e.g.
// {dt DATE},{hour INTEGER}. They are columns of the view whether or not files
// exist, with the same types: when files exist they are passed to read_parquet
// as hive_types, so their types never depend on DuckDB's autodetection.
//
// Dir must lie inside one of Config.AllowedDirs, or the table is not exposed:
// the sandbox would forbid reading its files anyway.
type Table struct {
	Name             string
	Dir              string
	Columns          []Column
	PartitionColumns []Column
	// Files, when not nil, is the exact list of Parquet files to read (all
	// inside Dir) instead of every file under Dir. The catalog uses it to
	// leave out files that compaction has merged into another one, so a
	// query never sees a row twice while compaction runs.
	Files []string
}

// Catalog lists the tables; it is called before each query so new tables
// become visible without restart. It must be safe for concurrent use.
type Catalog interface {
	Tables() []Table
}

// Config tunes an Engine. Zero values select the documented defaults.
type Config struct {
	// MemoryLimit is DuckDB's memory_limit, default "1GB". It bounds the
	// whole database, i.e. all concurrent queries together.
	MemoryLimit string
	// Threads is DuckDB's worker thread count, default runtime.NumCPU().
	Threads int
	// Timeout bounds each query, default 60s. When it passes the query is
	// interrupted (duckdb-go interrupts on context cancellation) and Query
	// returns an error for which IsUserError is true.
	Timeout time.Duration
	// MaxRows is the number of rows returned at most, default 10000;
	// Result.Truncated tells when the result was cut.
	MaxRows int
	// AllowedDirs are the only directories DuckDB may read (sandbox). Every
	// Table.Dir must lie inside one of them.
	AllowedDirs []string
	// TempDir is DuckDB's temp_directory for spilling, created if missing.
	// Optional: when empty, spilling is disabled and a query that needs more
	// than MemoryLimit fails with an out-of-memory error (a server error, see
	// IsUserError) instead of writing to the working directory.
	TempDir string
}

const (
	defaultMemoryLimit = "1GB"
	defaultTimeout     = 60 * time.Second
	defaultMaxRows     = 10000
)

func (c Config) withDefaults() Config {
	if c.MemoryLimit == "" {
		c.MemoryLimit = defaultMemoryLimit
	}
	if c.Threads <= 0 {
		c.Threads = runtime.NumCPU()
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	if c.MaxRows <= 0 {
		c.MaxRows = defaultMaxRows
	}
	return c
}

// Engine runs SQL over the catalog's tables. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	cat     Catalog
	db      *sql.DB
	allowed []string // cleaned absolute AllowedDirs

	mu    sync.Mutex            // guards views and view DDL
	views map[string]*viewState // key: lower-cased table name
}

// New opens an in-memory DuckDB database, applies cfg and locks the
// configuration down (see applySandbox for the exact settings). If any
// setting cannot be applied New fails rather than run unsandboxed.
func New(cfg Config, cat Catalog) (*Engine, error) {
	if cat == nil {
		return nil, errors.New("cannot create query engine: nil catalog")
	}
	cfg = cfg.withDefaults()
	allowed, err := absDirs(cfg.AllowedDirs)
	if err != nil {
		return nil, fmt.Errorf("cannot create query engine: %w", err)
	}
	if cfg.TempDir != "" {
		if cfg.TempDir, err = filepath.Abs(cfg.TempDir); err != nil {
			return nil, fmt.Errorf("cannot resolve temp dir: %w", err)
		}
		// DuckDB creates only the last path element of its temp directory.
		if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create temp dir: %w", err)
		}
	}
	// No per-connection init function: every option applySandbox sets is
	// global, set once before New returns (so before any user query), and
	// after lock_configuration an init function could not SET anything.
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("cannot open duckdb: %w", err)
	}
	db := sql.OpenDB(connector) // db.Close closes the connector
	e := &Engine{cfg: cfg, cat: cat, db: db, allowed: allowed, views: map[string]*viewState{}}
	if err := e.applySandbox(context.Background()); err != nil {
		_ = db.Close()
		return nil, err
	}
	return e, nil
}

// Close stops new queries, waits for running ones, and releases the
// database. Queries after Close fail with a server (non-user) error.
func (e *Engine) Close() error {
	if err := e.db.Close(); err != nil {
		return fmt.Errorf("cannot close duckdb: %w", err)
	}
	return nil
}

// Query runs one SQL statement (SELECT, a SELECT-like statement such as
// DESCRIBE, SHOW, SUMMARIZE or PRAGMA table_info, or EXPLAIN) with the
// configured timeout and returns at most MaxRows rows. Several statements,
// other statement kinds (COPY, CREATE, SET, ATTACH, ...) and statements with
// parameters are refused with an error for which IsUserError is true,
// before anything runs. Views are refreshed from the catalog first.
func (e *Engine) Query(ctx context.Context, sqlText string) (*Result, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()

	_, setupErr := e.refresh(ctx, false)
	res, err := e.run(ctx, sqlText)
	if err != nil && isIOError(err) {
		// The files behind a view may have vanished: look again, and retry
		// once if that changed any view.
		changed, rerr := e.refresh(ctx, true)
		setupErr = rerr
		if changed {
			res, err = e.run(ctx, sqlText)
		}
	}
	if err != nil {
		return nil, e.queryFailure(ctx, err, setupErr)
	}
	res.ElapsedMs = float64(time.Since(start).Microseconds()) / 1000
	return res, nil
}

// queryFailure decorates a failed query's error: a timeout says so, and
// problems met while setting up views are attached since they often explain
// a "table does not exist".
func (e *Engine) queryFailure(ctx context.Context, err, setupErr error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(err, ctx.Err())
	}
	qe := &queryError{err: err, setup: setupErr}
	if errors.Is(err, context.DeadlineExceeded) {
		qe.timeout = e.cfg.Timeout
	}
	return qe
}
