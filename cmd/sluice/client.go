package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/query"
)

// defaultKeyFile is where `sluice up` on the default data directory writes
// its first admin key.
func defaultKeyFile() string {
	data := os.Getenv("SLUICE_DATA")
	if data == "" {
		data = "./sluice-data"
	}
	return filepath.Join(data, auth.AdminKeyFile)
}

func defaultServer() string {
	if s := os.Getenv("SLUICE_SERVER"); s != "" {
		return s
	}
	return "http://127.0.0.1:8080"
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (sluice sql "select 1" --format json).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runSQL(args []string) error {
	c := newCommand("sql")
	format := c.fs.String("format", "table", "output format: table, json (NDJSON) or csv")
	timeout := c.fs.Duration("timeout", 5*time.Minute, "give up waiting after this long")
	async := c.fs.Bool("async", false, "run it as an async query: print its record (id, state) and return; see sluice query")
	pos, err := parseInterleaved(c.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New(`give one SQL statement, quoted: sluice sql "select count(*) from logs"`)
	}
	if *async {
		return postAsync(c, pos[0])
	}
	ctx, cancel := signalContext()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()
	key, err := c.key()
	if err != nil {
		return err
	}
	qc := &query.Client{BaseURL: c.serverURL(), Key: key}
	res, err := qc.Query(ctx, pos[0])
	if opErr := (*net.OpError)(nil); errors.As(err, &opErr) {
		return fmt.Errorf("%w (is sluice up there? set --server or SLUICE_SERVER)", err)
	}
	if err != nil {
		return err
	}
	return query.Format(os.Stdout, res, *format)
}

func runPut(args []string) error {
	c := newCommand("put")
	batch := c.fs.Int("batch", 1000, "records per request")
	raw := c.fs.Bool("raw", false, "send each line as it is (text/plain): it becomes a record {\"message\": line}")
	pos, err := parseInterleaved(c.fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return errors.New("usage: sluice put STREAM [FILE|-]")
	}
	in := io.Reader(os.Stdin)
	if len(pos) == 2 && pos[1] != "-" {
		f, err := os.Open(pos[1])
		if err != nil {
			return fmt.Errorf("cannot open input: %w", err)
		}
		defer f.Close()
		in = f
	}
	key, err := c.key()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	ic := &ingest.Client{BaseURL: c.serverURL(), BatchRecords: *batch, Key: key, Raw: *raw}
	sum, err := ic.Put(ctx, pos[0], in)
	for _, f := range sum.Failures {
		fmt.Fprintln(os.Stderr, f)
	}
	fmt.Fprintf(os.Stderr, "sent %d records, %d failed\n", sum.Sent, sum.Failed)
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d records were rejected", sum.Failed)
	}
	return nil
}
