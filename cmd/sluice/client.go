package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/query"
)

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
		if err := fs.Parse(args); err != nil {
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
	fs := flag.NewFlagSet("sql", flag.ContinueOnError)
	server := fs.String("server", defaultServer(), "sluice server URL")
	format := fs.String("format", "table", "output format: table, json (NDJSON) or csv")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up waiting after this long")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New(`give one SQL statement, quoted: sluice sql "select count(*) from logs"`)
	}
	ctx, cancel := signalContext()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()
	c := &query.Client{BaseURL: strings.TrimRight(*server, "/")}
	res, err := c.Query(ctx, pos[0])
	if err != nil {
		return err
	}
	return query.Format(os.Stdout, res, *format)
}

func runPut(args []string) error {
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	server := fs.String("server", defaultServer(), "sluice server URL")
	batch := fs.Int("batch", 1000, "records per request")
	pos, err := parseInterleaved(fs, args)
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
	ctx, cancel := signalContext()
	defer cancel()
	c := &ingest.Client{BaseURL: strings.TrimRight(*server, "/"), BatchRecords: *batch}
	sum, err := c.Put(ctx, pos[0], in)
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

// getJSON fetches an admin endpoint and pretty-prints it.
func getJSON(server, path string) error {
	resp, err := http.Get(strings.TrimRight(server, "/") + path)
	if err != nil {
		return fmt.Errorf("cannot reach sluice server %s (set --server or SLUICE_SERVER): %w", server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, data)
	}
	_, err = os.Stdout.Write(data)
	return err
}

func runList(kind string) func([]string) error {
	return func(args []string) error {
		fs := flag.NewFlagSet(kind, flag.ContinueOnError)
		server := fs.String("server", defaultServer(), "sluice server URL")
		pos, err := parseInterleaved(fs, args)
		if err != nil {
			return err
		}
		switch {
		case len(pos) == 1 && pos[0] == "list":
			return getJSON(*server, "/v1/"+kind)
		case len(pos) == 2 && pos[0] == "show":
			return getJSON(*server, "/v1/"+kind+"/"+pos[1])
		}
		return fmt.Errorf("usage: sluice %s list | show NAME", strings.TrimSuffix(kind, "s"))
	}
}

func runPipeline(args []string) error {
	if len(args) >= 2 && args[0] == "status" {
		fs := flag.NewFlagSet("pipeline status", flag.ContinueOnError)
		server := fs.String("server", defaultServer(), "sluice server URL")
		pos, err := parseInterleaved(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("usage: sluice pipeline status NAME")
		}
		return getJSON(*server, "/v1/pipelines/"+pos[0]+"/status")
	}
	return runList("pipelines")(args)
}
