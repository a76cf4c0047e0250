package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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
func startAsync(c asyncConfig, qe *query.Engine, bucket objstore.Bucket, tempDir, data string, mux *http.ServeMux, guard *auth.Guard, log *slog.Logger) (func(), error) {
	streamer, ok := bucket.(objstore.Streamer)
	if !ok {
		return nil, fmt.Errorf("BUG: cannot serve async queries: storage %T cannot stream files", bucket)
	}
	maxScan, _ := parseSize(c.maxScan) // validated
	host, _ := os.Hostname()
	data, _ = filepath.Abs(data)
	a := &query.Async{
		Engine: qe, Bucket: streamer, Dir: filepath.Join(tempDir, "async"), Log: log,
		Node:       host + ":" + data, // stable across restarts: Run fails what a killed run left
		MaxRunning: c.running, MaxQueued: c.queued, MaxBytesScanned: maxScan,
		Timeout: c.timeout, Retention: c.retention,
	}
	a.Register(mux, func(h http.Handler) http.Handler { return guard.Require("query", nil, h) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	return func() { cancel(); <-done }, nil
}

// postAsync posts sqlText to /v1/queries and prints the new record.
func postAsync(c command, sqlText string) error {
	return c.admin().call("POST", "/v1/queries", map[string]string{"sql": sqlText})
}

// queryCommands are `sluice query get|results|cancel|list`: the async
// queries `sluice sql --async` starts.
func queryCommands() func([]string) error {
	return subcommands("query", map[string]func([]string) error{
		"get": func(args []string) error {
			c := newCommand("query get")
			pos, err := c.parse(args, 1, "query get ID")
			if err != nil {
				return err
			}
			return c.admin().call("GET", "/v1/queries/"+url.PathEscape(pos[0]), nil)
		},
		"cancel": func(args []string) error {
			c := newCommand("query cancel")
			pos, err := c.parse(args, 1, "query cancel ID")
			if err != nil {
				return err
			}
			return c.admin().call("DELETE", "/v1/queries/"+url.PathEscape(pos[0]), nil)
		},
		"list": func(args []string) error {
			c := newCommand("query list")
			limit := c.fs.Int("limit", 100, "newest queries to list")
			if _, err := c.parse(args, 0, "query list [--limit N]"); err != nil {
				return err
			}
			return c.admin().call("GET", fmt.Sprintf("/v1/queries?limit=%d", *limit), nil)
		},
		"results": runQueryResults,
	})
}

// runQueryResults waits for an async query to end, then streams its whole
// result in --format to stdout or --output.
func runQueryResults(args []string) error {
	c := newCommand("query results")
	format := c.fs.String("format", "csv", "csv, parquet, ndjson, arrow (IPC stream), or json (one page: see --offset and --limit)")
	output := c.fs.String("output", "-", "file to write the result to (- : stdout)")
	offset := c.fs.Int64("offset", 0, "first row of the page (--format json)")
	limit := c.fs.Int("limit", 1000, "rows of the page (--format json)")
	timeout := c.fs.Duration("timeout", time.Hour, "give up waiting for the query after this long")
	pos, err := c.parse(args, 1, "query results ID [--format csv|parquet|ndjson|arrow|json] [--output FILE]")
	if err != nil {
		return err
	}
	a := c.admin()
	ctx, cancel := signalContext()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()
	id := url.PathEscape(pos[0])
	for {
		var rec query.Record
		if err := a.get("/v1/queries/"+id, &rec); err != nil {
			return err
		}
		if rec.Done() {
			if rec.State != query.StateSucceeded {
				return fmt.Errorf("cannot get the results of async query %s: it %s: %s", rec.ID, rec.State, rec.Error)
			}
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot get the results of async query %s: still %s after --timeout %s", rec.ID, rec.State, *timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
	path := fmt.Sprintf("/v1/queries/%s/results?format=%s&offset=%d&limit=%d", id, url.QueryEscape(*format), *offset, *limit)
	return a.download(ctx, path, *output)
}

// download streams the answer of GET path into output ("-": stdout).
func (a admin) download(ctx context.Context, path, output string) error {
	if a.keyErr != nil {
		return a.keyErr
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(a.server, "/")+path, nil)
	if err != nil {
		return err
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach sluice server %s (set --server or SLUICE_SERVER): %w", a.server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot download the result: server answered %s: %s", resp.Status, serverText(resp.Body))
	}
	out := io.Writer(stdout)
	if output != "-" {
		f, err := os.Create(output)
		if err != nil {
			return fmt.Errorf("cannot create --output %s: %w", output, err)
		}
		defer f.Close()
		out = f
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		return fmt.Errorf("cannot download the result into %s: %w", output, err)
	}
	if f, ok := out.(*os.File); ok && output != "-" {
		return f.Sync()
	}
	return nil
}

// serverText is an error answer's message.
func serverText(body io.Reader) string {
	raw, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	var e struct{ Error string }
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(raw))
}
