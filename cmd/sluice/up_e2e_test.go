package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// logLines returns n NDJSON log records tagged with run, numbered from 0.
func logLines(run string, n int) []byte {
	var b bytes.Buffer
	levels := []string{"debug", "info", "warn", "error"}
	for i := range n {
		fmt.Fprintf(&b, `{"ts":"2026-11-22T10:%02d:%02dZ","level":%q,"service":"api","host":"h%d","message":"request %d","run":%q,"n":%d}`+"\n",
			i/60%60, i%60, levels[i%4], i%5, i, run, i)
	}
	return b.Bytes()
}

type position struct {
	Partition int32
	Offset    int64
}

// putHTTP sends lines in requests of 1000 and returns where each landed.
func putHTTP(t *testing.T, s *e2e.Server, lines []byte) []position {
	t.Helper()
	var out []position
	all := bytes.SplitAfter(lines, []byte("\n"))
	for len(all) > 0 && len(all[0]) > 0 {
		n := min(1000, len(all))
		var resp ingest.Response
		status, body := s.Post("/v1/streams/logs/records", "application/x-ndjson", bytes.Join(all[:n], nil), &resp)
		if status != 200 || resp.FailedRecordCount != 0 {
			t.Fatalf("ingest answered %d: %s", status, body)
		}
		for _, r := range resp.Records {
			out = append(out, position{*r.Partition, *r.Offset})
		}
		all = all[n:]
	}
	return out
}

// TestUpEndToEnd is the README's promise: records sent over HTTP are counted
// in SQL exactly once, across a graceful restart on the same data directory.
func TestUpEndToEnd(t *testing.T) {
	data := t.TempDir()
	s := e2e.Up(t, data)

	sent := putHTTP(t, s, logLines("first", 10_000))
	s.WaitCount("select count(*) from logs", 10_000, 60*time.Second)
	checkPositions(t, s, sent)

	s.Stop()
	s = e2e.Up(t, data)
	if n, err := s.Count("select count(*) from logs"); err != nil || n != 10_000 {
		t.Fatalf("after restart: count = %d, %v; want 10000", n, err)
	}

	// The CLI's put and sql commands, as the quickstart uses them.
	ctx := t.Context()
	_, stderr, err := e2e.Run(t, ctx, bytes.NewReader(logLines("second", 1_000)), "put", "logs", "-", "--server", s.URL())
	if err != nil {
		t.Fatalf("sluice put: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "sent 1000 records, 0 failed") {
		t.Fatalf("sluice put said %q", stderr)
	}
	s.WaitCount("select count(*) from logs", 11_000, 60*time.Second)
	out, stderr, err := e2e.Run(t, ctx, nil, "sql", "--server", s.URL(), "--format", "csv",
		"select level, count(*) as n from logs where attrs->>'run' = 'second' group by level order by level")
	if err != nil {
		t.Fatalf("sluice sql: %v\n%s", err, stderr)
	}
	if want := "level,n\ndebug,250\nerror,250\ninfo,250\nwarn,250\n"; out != want {
		t.Fatalf("sluice sql printed\n%s\nwant\n%s", out, want)
	}
	if n, _ := s.Count("select count(distinct (_partition, _offset)) from logs"); n != 11_000 {
		t.Fatalf("distinct source positions = %d, want 11000", n)
	}

	// SIGTERM drains: records consumed but not yet due for a file (the
	// table's file_age is 10s) are written before exit, so right after the
	// restart they are all there, before any new flush could happen.
	putHTTP(t, s, logLines("third", 500))
	time.Sleep(2 * time.Second)
	s.Stop()
	s = e2e.Up(t, data)
	if n, err := s.Count("select count(*) from logs"); err != nil || n != 11_500 {
		t.Fatalf("right after a graceful restart: count = %d, %v; want 11500 (SIGTERM must flush)", n, err)
	}
	s.Stop()
}

// checkPositions compares the source positions the ingest API reported with
// those in the table: the same set, each once.
func checkPositions(t *testing.T, s *e2e.Server, sent []position) {
	t.Helper()
	r, err := s.Query("select _partition, _offset from logs order by _partition, _offset")
	if err != nil {
		t.Fatal(err)
	}
	got := map[position]bool{}
	for _, row := range r.Rows {
		p := position{int32(row[0].(float64)), int64(row[1].(float64))}
		if got[p] {
			t.Fatalf("position %v is in the table twice", p)
		}
		got[p] = true
	}
	for _, p := range sent {
		if !got[p] {
			t.Fatalf("record acknowledged at %v is not in the table", p)
		}
	}
	if len(got) != len(sent) {
		t.Fatalf("table has %d positions, ingest acknowledged %d", len(got), len(sent))
	}
}

// TestUpKafkaClient produces with a plain franz-go client straight to the
// embedded broker's port, as any Kafka client would, and counts the records
// in SQL; records without ts take the Kafka record time.
func TestUpKafkaClient(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	cl, err := kgo.NewClient(append(e2e.KafkaOpts(e2e.AdminKey), kgo.SeedBrokers(s.KafkaAddr), kgo.DefaultProduceTopic("logs"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recTime := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 500 {
		v, _ := json.Marshal(map[string]any{"level": "info", "service": "kafka-client", "message": fmt.Sprint("m", i)})
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint("k", i%7)), Value: v, Timestamp: recTime})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce to embedded broker: %v", err)
	}
	s.WaitCount("select count(*) from logs where service = 'kafka-client'", 500, 60*time.Second)
	n, err := s.Count("select count(*) from logs where ts = TIMESTAMPTZ '2026-03-04 05:06:07+00' and dt = DATE '2026-03-04' and hour = 5")
	if err != nil || n != 500 {
		t.Fatalf("rows with the Kafka record time as ts and partition: %d, %v; want 500", n, err)
	}
}

// TestUpBadInput: each kind of bad input gets a clear 4xx and costs none of
// the valid records sent with it.
func TestUpBadInput(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	path := "/v1/streams/logs/records"

	// An invalid line between valid ones: 207, the error names line 2.
	var resp ingest.Response
	status, body := s.Post(path, "application/x-ndjson", []byte("{\"message\":\"ok1\"}\n{\"message\": oops}\n{\"message\":\"ok2\"}\n"), &resp)
	if status != 207 || resp.FailedRecordCount != 1 || !strings.Contains(resp.Records[1].Error, "line 2") {
		t.Fatalf("invalid line: %d %s", status, body)
	}
	// A 10 MB record between valid ones fails alone.
	big := `{"message":"` + strings.Repeat("x", 10<<20) + `"}`
	status, body = s.Post(path, "application/x-ndjson", []byte("{\"message\":\"ok3\"}\n"+big+"\n{\"message\":\"ok4\"}\n"), &resp)
	if status != 207 || resp.FailedRecordCount != 1 || resp.Records[1].ErrorCode != ingest.CodeTooLarge {
		t.Fatalf("10 MB record: %d %.300s", status, body)
	}
	for _, c := range []struct {
		name, ctype, body string
		status            int
		says              string
	}{
		{"wrong content type", "text/csv", "a,b\n", 415, "unsupported Content-Type"},
		{"empty body", "application/x-ndjson", "", 400, "no records"},
		{"malformed JSON batch", "application/json", "{\"records\": [\n{\"data\": {}},\n{\"data\": }]}", 400, "line 3"},
		{"unknown stream", "application/x-ndjson", "{}", 404, "does not exist"},
	} {
		p := path
		if c.name == "unknown stream" {
			p = "/v1/streams/nope/records"
		}
		status, body := s.Post(p, c.ctype, []byte(c.body), nil)
		if status != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s: got %d %s; want %d mentioning %q", c.name, status, body, c.status, c.says)
		}
	}
	s.WaitCount("select count(*) from logs", 4, 60*time.Second)
	r, err := s.Query("select string_agg(message, ',' order by message) from logs")
	if err != nil || fmt.Sprint(r.Rows) != "[[ok1,ok2,ok3,ok4]]" {
		t.Fatalf("valid records in the table: %v, %v", r.Rows, err)
	}
}
