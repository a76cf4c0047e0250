package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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
	progress := c.fs.Bool("progress", false, "print records sent and the rate on stderr as it goes (the default when stderr is a terminal)")
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
	meter := newPutMeter(os.Stderr, *progress)
	ic := &ingest.Client{BaseURL: c.serverURL(), BatchRecords: *batch, Key: key, Raw: *raw, HTTP: meter.client()}
	sum, err := ic.Put(ctx, pos[0], in)
	meter.done()
	for _, f := range sum.Failures {
		fmt.Fprintln(os.Stderr, f)
	}
	elapsed := time.Since(meter.start)
	fmt.Fprintf(os.Stderr, "sent %d records, %d failed in %s (%.0f records/s)\n", sum.Sent, sum.Failed, elapsed.Round(time.Millisecond), rate(sum.Sent+sum.Failed, elapsed))
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d records were rejected", sum.Failed)
	}
	return nil
}

// putMeter counts the records of every request `sluice put` got an answer
// to and, when on, prints how many and how fast on stderr: at the first
// answer, then at most every progressEvery. On a terminal the line is
// rewritten in place; elsewhere (--progress into a file) each is a line.
type putMeter struct {
	out     io.Writer
	on, tty bool
	start   time.Time
	last    time.Time // of the last progress line
	records int
	printed bool
}

// progressEvery is how often `sluice put` prints progress at most.
const progressEvery = 500 * time.Millisecond

func newPutMeter(out *os.File, progress bool) *putMeter {
	tty := isTerminal(out)
	return &putMeter{out: out, on: progress || tty, tty: tty, start: time.Now()}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// client is the HTTP client the ingest client sends with, counting each
// answered request's records (its body's lines).
func (m *putMeter) client() *http.Client {
	return &http.Client{Transport: countingTransport{http.DefaultTransport, m.answered}}
}

func (m *putMeter) answered(records int) {
	m.records += records
	if !m.on || (m.printed && time.Since(m.last) < progressEvery) {
		return
	}
	m.last, m.printed = time.Now(), true
	line := fmt.Sprintf("sent %d records (%.0f records/s)", m.records, rate(m.records, time.Since(m.start)))
	if m.tty {
		fmt.Fprintf(m.out, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(m.out, "progress: "+line)
}

// done ends the progress line on a terminal, before the summary.
func (m *putMeter) done() {
	if m.tty && m.printed {
		fmt.Fprint(m.out, "\r\033[K")
	}
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// countingTransport calls answered with the number of lines of each request
// body that got a 2xx answer. ingest.Client sends one request at a time, so
// answered runs on one goroutine.
type countingTransport struct {
	next     http.RoundTripper
	answered func(records int)
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var n lineCounter
	if req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			io.Copy(&n, body) // a bytes.Reader: no copy of the body is kept
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode < 300 {
		t.answered(int(n))
	}
	return resp, err
}

// lineCounter counts the newlines written to it.
type lineCounter int

func (c *lineCounter) Write(p []byte) (int, error) {
	*c += lineCounter(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}
