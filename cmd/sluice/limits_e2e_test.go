package main

import (
	"bytes"
	"fmt"
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
