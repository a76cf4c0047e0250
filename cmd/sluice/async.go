package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/query"
)

// asyncConfig are the flags of the async query API (/v1/queries).
type asyncConfig struct {
	running   int
	queued    int
	maxScan   string
	timeout   time.Duration
	retention time.Duration
}

func asyncFlags(fs *flag.FlagSet, c *asyncConfig) {
	fs.IntVar(&c.running, "async-query-concurrency", 2, "async queries (POST /v1/queries) that run at once; more wait in a queue")
	fs.IntVar(&c.queued, "async-query-queue", 100, "async queries that may wait; past it POST /v1/queries answers 429")
	fs.StringVar(&c.maxScan, "async-query-max-scan", "0", "refuse an async query whose table files, after pruning, hold more bytes, like 10GiB (0: no limit)")
	fs.DurationVar(&c.timeout, "async-query-timeout", time.Hour, "longest an async query may run")
	fs.DurationVar(&c.retention, "async-query-retention", 24*time.Hour, "how long async query records and results are kept after the query ends")
}

func (c asyncConfig) validate() []error {
	var errs []error
	if c.running < 1 {
		errs = append(errs, errors.New("--async-query-concurrency must be at least 1"))
	}
	if c.queued < 1 {
		errs = append(errs, errors.New("--async-query-queue must be at least 1"))
	}
	if n, err := parseSize(c.maxScan); err != nil || n < 0 {
		errs = append(errs, fmt.Errorf("--async-query-max-scan %q: want a size like 10GiB, or 0", c.maxScan))
	}
	if c.timeout <= 0 {
		errs = append(errs, errors.New("--async-query-timeout must be positive"))
	}
	if c.retention <= 0 {
		errs = append(errs, errors.New("--async-query-retention must be positive"))
	}
	return errs
}

// startAsync serves the async query API on mux (query scope; each key sees
// its own queries) and returns the function that stops it.
func startAsync(c asyncConfig, qe *query.Engine, bucket objstore.Bucket, tempDir string, mux *http.ServeMux, guard *auth.Guard, log *slog.Logger) (func(), error) {
	streamer, ok := bucket.(objstore.Streamer)
	if !ok {
		return nil, fmt.Errorf("BUG: cannot serve async queries: storage %T cannot stream files", bucket)
	}
	maxScan, _ := parseSize(c.maxScan) // validated
	a := &query.Async{
		Engine: qe, Bucket: streamer, Dir: filepath.Join(tempDir, "async"), Log: log,
		MaxRunning: c.running, MaxQueued: c.queued, MaxBytesScanned: maxScan,
		Timeout: c.timeout, Retention: c.retention,
	}
	a.Register(mux, func(h http.Handler) http.Handler { return guard.Require("query", nil, h) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	return func() { cancel(); <-done }, nil
}
