package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestIngestLimitsAtTheirEdge runs the README's ingest limits against the
// built binary: a record of exactly 1 MiB is written (the broker's limit is
// set to hold it) and reaches the table, one byte more fails alone with
// RecordTooLarge; 50,000 records in one request are written, 50,001 refuse
// the request whole, as does a 32 MiB body of one-byte lines.
func TestIngestLimitsAtTheirEdge(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	big := func(n int) string { return `"` + strings.Repeat("x", n-2) + `"` } // a JSON string of n bytes
	body := []byte(big(ingest.MaxRecordBytes) + "\n" + big(ingest.MaxRecordBytes+1) + "\n")
	var resp ingest.Response
	status, out := s.Post("/v1/streams/logs/records", "application/x-ndjson", body, &resp)
	if status != 207 || len(resp.Records) != 2 || resp.Records[0].ErrorCode != "" || resp.Records[1].ErrorCode != ingest.CodeTooLarge {
		t.Fatalf("1 MiB and 1 MiB + 1: %d %.300s", status, out)
	}
	s.WaitCount("select count(*) from logs", 1, time.Minute)

	var lines bytes.Buffer
	for i := range ingest.MaxRecords {
		fmt.Fprintf(&lines, `{"message":"m%d"}`+"\n", i)
	}
	if status, out := s.Post("/v1/streams/logs/records", "application/x-ndjson", lines.Bytes(), nil); status != 200 {
		t.Fatalf("%d records: %d %.300s", ingest.MaxRecords, status, out)
	}
	lines.WriteString(`{"message":"one too many"}` + "\n")
	if status, out := s.Post("/v1/streams/logs/records", "application/x-ndjson", lines.Bytes(), nil); status != 413 || !strings.Contains(out, "nothing was accepted") {
		t.Fatalf("%d records: %d %.300s", ingest.MaxRecords+1, status, out)
	}
	tiny := bytes.Repeat([]byte("x\n"), (ingest.MaxBodyBytes-1)/2)
	if status, out := s.Post("/v1/streams/logs/records", "application/x-ndjson", tiny, nil); status != 413 {
		t.Fatalf("32 MiB of one-byte lines: %d %.300s", status, out)
	}
	s.WaitCount("select count(*) from logs", 1+ingest.MaxRecords, 2*time.Minute)
}

// TestHostileRequestsStayBounded sends what took the server down before
// (one huge SELECT, a body of millions of bad lines, many large bodies at
// once) to a server whose memory flags add up to well under 1 GiB: each
// gets its clear answer, the server stays up and serves a normal ingest and
// query right after, and its peak RSS stays under 1 GiB. The peak after
// each case is logged.
func TestHostileRequestsStayBounded(t *testing.T) {
	s := e2e.UpEnv(t, t.TempDir(), []string{"GOMEMLIMIT=600MiB"},
		"--query-memory", "256MB", "--query-result-bytes", "64MiB", "--ingest-memory", "128MiB", "--memory-budget", "128MiB", "--allow-exec")
	const limit = 1 << 30
	marker := 0
	stillServes := func(what string) {
		t.Helper()
		marker++
		msg := fmt.Sprintf("after-%d", marker)
		if code, out := s.Post("/v1/streams/logs/records", "application/x-ndjson", []byte(`{"message":"`+msg+`"}`+"\n"), nil); code != 200 {
			t.Fatalf("%s: a normal ingest then: %d %s", what, code, out)
		}
		s.WaitCount("select count(*) from logs where message = '"+msg+"'", 1, 2*time.Minute)
		peak := s.PeakRSS()
		t.Logf("%s: peak RSS %d MiB", what, peak>>20)
		if peak > limit {
			t.Fatalf("%s: peak RSS %d MiB, over 1 GiB", what, peak>>20)
		}
	}
	stillServes("start")

	// A result larger than --query-result-bytes is cut, and says so.
	var cut struct {
		Rows        [][]any
		Truncated   bool   `json:"truncated"`
		TruncatedBy string `json:"truncated_by"`
	}
	q, _ := json.Marshal(map[string]string{"sql": "select repeat('x', 20000) from range(10000)"})
	if code, out := s.Post("/v1/query", "application/json", q, &cut); code != 200 || !cut.Truncated || !strings.Contains(cut.TruncatedBy, "--query-result-bytes") || len(cut.Rows) > 3400 {
		t.Fatalf("a 200 MB SELECT: %d, %d rows, truncated by %q: %.200s", code, len(cut.Rows), cut.TruncatedBy, out)
	}
	stillServes("a SELECT of 10,000 rows of 20 kB")
	// One that DuckDB cannot even hold within --query-memory fails clearly.
	q, _ = json.Marshal(map[string]string{"sql": "select repeat('x', 200000) from range(10000)"})
	if code, out := s.Post("/v1/query", "application/json", q, nil); code != 200 && code != 503 {
		t.Fatalf("a 2 GB SELECT: %d %.300s", code, out)
	}
	stillServes("a SELECT of 10,000 rows of 200 kB")

	bad := bytes.Repeat([]byte("x\n"), (ingest.MaxBodyBytes-1)/2)
	if code, out := s.Post("/v1/streams/logs/records", "application/x-ndjson", bad, nil); code != 413 {
		t.Fatalf("32 MiB of bad one-byte lines: %d %.300s", code, out)
	}
	var wide bytes.Buffer
	for wide.Len() < ingest.MaxBodyBytes-1000 {
		wide.WriteString(strings.Repeat("y", 600) + "\n")
	}
	if code, out := s.Post("/v1/streams/logs/records", "application/x-ndjson", wide.Bytes(), nil); code != 400 && code != 413 {
		t.Fatalf("32 MiB of bad 600-byte lines: %d %.300s", code, out)
	}
	stillServes("bodies of bad lines")

	// 40 bodies of 28 MiB at once: the ingest limiter lets a few in and
	// answers the others 503 with Retry-After.
	cli(t, s, "stream", "create", "flood")
	body := bytes.Repeat([]byte(`{"message":"flood","pad":"`+strings.Repeat("z", 1000)+`"}`+"\n"), 28<<20/1030)
	codes := make(chan int, 40)
	for range 40 {
		go func() {
			resp, err := s.Do("POST", "/v1/streams/flood/records", "application/x-ndjson", body, e2e.AdminKey)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	seen := map[int]int{}
	for range 40 {
		seen[<-codes]++
	}
	if seen[0] > 0 || seen[200]+seen[503] != 40 || seen[200] == 0 {
		t.Fatalf("40 large bodies at once: answers %v", seen)
	}
	stillServes(fmt.Sprintf("40 bodies of 28 MiB at once (answers %v)", seen))

	// 300 clients that send a request's head and then hold its body: they
	// cost a connection each (bounded by --max-connections, cut by the
	// read timeout), and the others are served meanwhile.
	var slow []net.Conn
	for range 300 {
		c, err := net.Dial("tcp", s.HTTPAddr)
		if err != nil {
			t.Fatalf("slow client: %v", err)
		}
		fmt.Fprintf(c, "POST /v1/streams/logs/records HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: 10000000\r\n\r\n{\"mess", s.HTTPAddr, e2e.AdminKey)
		slow = append(slow, c)
	}
	stillServes("300 slow bodies held open")
	for _, c := range slow {
		c.Close()
	}

	// An exec function that floods its stdout: the batch fails once its
	// output passes the 64 MiB limit (fn.MaxOutput), the partition retries
	// with that error, and nothing else is held up.
	script := filepath.Join(t.TempDir(), "flood.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nexec yes '{\"message\":\"flood\"}'\n"), 0o755)
	cli(t, s, "fn", "deploy", "flood", "--runtime", "exec", "--code", script, "--timeout", "30s")
	cli(t, s, "stream", "create", "floodin", "--partitions", "1")
	cli(t, s, "pipeline", "create", "flood", "--stream", "floodin", "--function", "flood", "--table", "logs", "--batch-size", "1")
	if code, out := s.Post("/v1/streams/floodin/records", "application/x-ndjson", []byte(`{"message":"go"}`+"\n"), nil); code != 200 {
		t.Fatalf("ingest into floodin: %d %s", code, out)
	}
	e2e.WaitFor(t, 3*time.Minute, "the flooding function's partition to retry with the output limit", func() error {
		for _, p := range pipelineStatus(t, s, "flood").Partitions {
			if p.State != "retrying" || !strings.Contains(p.LastError, "output exceeds the limit") {
				return fmt.Errorf("partition %d: %s (%s)", p.Partition, p.State, p.LastError)
			}
		}
		return nil
	})
	stillServes("an exec function flooding its stdout")
}
