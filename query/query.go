// Package query is sluice's SQL query service: it exposes every table of the
// catalog as a DuckDB view over the table's Hive-partitioned Parquet files and
// runs user SQL against those views inside a locked-down DuckDB instance.
//
// Design trade-offs, in short:
//
//   - One in-process DuckDB database (in memory) serves all queries through a
//     *sql.DB pool; views are database-level objects, so a view created on one
//     connection is visible to all of them.
//   - Every table has a database-wide view with its declared columns and no
//     row (refreshed from Catalog.Tables before each query). A statement
//     reads the tables it names through temporary views of its own
//     connection, which shadow those: over exactly the files the catalog's
//     manifests list, less the ones the statement's predicates rule out
//     (prune.go), so a query never lists a directory, never opens a file it
//     cannot need, and never sees a file that is not committed. A table
//     without files reads as its empty view, so "select count(*) from logs"
//     answers 0 instead of failing with "no files found".
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
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
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
// TimeColumn names the table's time column ("" if none), on which files
// are pruned by their min/max.
//
// Dir must lie inside one of Config.AllowedDirs, or the table is not exposed:
// the sandbox would forbid reading its files anyway.
type Table struct {
	Name             string
	Dir              string
	Columns          []Column
	PartitionColumns []Column
	TimeColumn       string
}

// Files is what a statement reads of one table: local paths (inside the
// table's Dir), and what was skipped.
type Files struct {
	Paths  []string
	Bytes  int64 // of Paths, as far as known
	Pruned int   // files the statement's predicates ruled out
	// UnionByName: the files' schemas differ (a table whose schema
	// evolved), so columns are matched by name.
	UnionByName bool
	// Release is called once the statement ended (nil: nothing to do):
	// the files may be evicted from a local cache after it.
	Release func()
}

// Catalog lists the tables and their files. It must be safe for concurrent
// use.
type Catalog interface {
	// Tables lists every table with its declared columns; it is called
	// before each query, so new tables become visible without restart.
	Tables() []Table
	// Files returns the committed files of table that keep accepts (a file
	// keep rejects cannot hold a row the statement needs), as local paths.
	Files(ctx context.Context, table string, keep func(FileStats) bool) (Files, error)
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
	// MaxResultBytes bounds the rows a result holds in memory (as
	// valueSize counts them), default 64 MiB; past it the result is cut
	// like at MaxRows, and TruncatedBy says which limit cut it.
	MaxResultBytes int64
	// MaxConcurrent is the number of queries that run at once, default 8;
	// more wait for a slot (within their timeout). With MaxResultBytes it
	// bounds the memory results take: MaxConcurrent × MaxResultBytes, about
	// twice that while an answer is encoded.
	MaxConcurrent int
	// AllowedDirs are the only directories DuckDB may read (sandbox). Every
	// Table.Dir must lie inside one of them.
	AllowedDirs []string
	// Log gets one line per query (nil: none).
	Log *slog.Logger
	// Observe, if set, is told of every query when it ends, failed or not
	// (metrics). It must not block.
	Observe func(QueryStats)
	// TempDir is DuckDB's temp_directory for spilling, created if missing.
	// Optional: when empty, spilling is disabled and a query that needs more
	// than MemoryLimit fails with an out-of-memory error (a server error, see
	// IsUserError) instead of writing to the working directory.
	TempDir string
	// SetupSQL are statements New runs once, after the sandbox is in
	// force and before any query (the Postgres face's catalog views and
	// macros, see pgwire.CatalogSQL). They may create objects; a failing
	// one fails New.
	SetupSQL []string
	// MaxStreamRows is the most rows Stream hands out (Postgres cursors
	// and COPY); 0, the default, is no limit (a stream holds one page in
	// memory, the result itself is in DuckDB's storage, spilled to
	// TempDir). A larger result is an error, never a cut.
	MaxStreamRows int64
	// SkipUnreadable leaves a committed file that cannot be read out of
	// the queries that would read it, listing it in each answer's
	// SkippedFiles, instead of failing them (UnreadableFileError).
	SkipUnreadable bool
}

const (
	defaultMemoryLimit = "1GB"
	defaultTimeout     = 60 * time.Second
	defaultMaxRows     = 10000
	// DefaultMaxResultBytes and DefaultMaxConcurrent are the defaults of
	// --query-result-bytes and --query-concurrency.
	DefaultMaxResultBytes = 64 << 20
	DefaultMaxConcurrent  = 8
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
	if c.MaxResultBytes <= 0 {
		c.MaxResultBytes = DefaultMaxResultBytes
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Engine runs SQL over the catalog's tables. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	cat     Catalog
	db      *sql.DB
	allowed []string // cleaned absolute AllowedDirs

	slots   chan struct{} // one per running query (MaxConcurrent)
	waiting atomic.Int64  // queries waiting for a slot

	mu    sync.Mutex            // guards views and view DDL
	views map[string]*viewState // key: lower-cased table name

	skipMu     sync.Mutex
	unreadable map[string]string // file → why, left out with SkipUnreadable
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
	e := &Engine{cfg: cfg, cat: cat, db: db, allowed: allowed, views: map[string]*viewState{}, slots: make(chan struct{}, cfg.MaxConcurrent)}
	if err := e.applySandbox(context.Background()); err != nil {
		_ = db.Close()
		return nil, err
	}
	for _, stmt := range cfg.SetupSQL {
		if _, err := db.Exec(stmt); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("cannot set up query engine: %s: %w", truncateSQL(stmt), err)
		}
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
func (e *Engine) Query(ctx context.Context, sqlText string) (res *Result, err error) {
	start := time.Now()
	if e.cfg.Observe != nil {
		defer func() { e.cfg.Observe(statsOf(res, err, time.Since(start))) }()
	}
	ctx, done, err := e.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()

	setupErr := e.refresh(ctx)
	res, err = e.runBound(ctx, sqlText)
	if err != nil && isIOError(err) && ctx.Err() == nil {
		// A file the manifest listed may have been retired and deleted in
		// between (a query longer than the grace period): read the
		// manifests again, once.
		res, err = e.runBound(ctx, sqlText)
	}
	if err != nil {
		return nil, e.queryFailure(ctx, err, setupErr)
	}
	e.logQuery("query", start, res, sqlText)
	return res, nil
}

// QueryStats is what Config.Observe is told of a query.
type QueryStats struct {
	Elapsed      time.Duration
	FilesScanned int
	FilesPruned  int
	BytesScanned int64
	// ErrorKind is "" for a query that succeeded, else ErrorKind of its error.
	ErrorKind string
}

func statsOf(res *Result, err error, elapsed time.Duration) QueryStats {
	st := QueryStats{Elapsed: elapsed, ErrorKind: ErrorKind(err)}
	if res != nil {
		st.FilesScanned, st.FilesPruned, st.BytesScanned = res.FilesScanned, res.FilesPruned, res.BytesScanned
	}
	return st
}

// Waiting is the number of queries waiting for a slot (--query-concurrency);
// Running the number that hold one.
func (e *Engine) Waiting() int64 { return e.waiting.Load() }
func (e *Engine) Running() int   { return len(e.slots) }

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
