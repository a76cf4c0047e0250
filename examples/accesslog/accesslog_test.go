package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sdk/go/sluicefn"
)

func TestParseLine(t *testing.T) {
	e, err := parseLine(`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"`)
	if err != nil {
		t.Fatal(err)
	}
	want := entry{remoteAddr: "127.0.0.1", ts: time.Date(2000, 10, 10, 20, 55, 36, 0, time.UTC),
		method: "GET", path: "/apache_pb.gif", protocol: "HTTP/1.0", status: 200, bytes: 2326,
		referer: "http://www.example.com/start.html", userAgent: "Mozilla/4.08 [en] (Win98; I ;Nav)"}
	if e != want {
		t.Fatalf("got %+v\nwant %+v", e, want)
	}
	e, err = parseLine(`::1 - - [10/Oct/2000:13:55:36 +0000] "GET /q?a=\"b\" HTTP/1.1" 304 - "-" "ua \"quoted\""`)
	if err != nil || e.path != `/q?a="b"` || e.userAgent != `ua "quoted"` || e.bytes != 0 || e.referer != "-" {
		t.Fatalf("got %+v, %v", e, err)
	}
	for _, bad := range []string{"", "x", `1.2.3.4 - - [bad time] "GET / HTTP/1.1" 200 1`, `1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" abc 1`} {
		if _, err := parseLine(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestSample runs the handler over sample.ndjson as the host would.
func TestSample(t *testing.T) {
	sample, err := os.ReadFile("sample.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var env bytes.Buffer
	for i, line := range bytes.Split(bytes.TrimSpace(sample), []byte("\n")) {
		fmt.Fprintf(&env, `{"stream":"access","partition":0,"offset":%d,"key":null,"timestamp":"2026-11-22T08:31:00.000000000Z","headers":{},"data":%s}`+"\n", i, line)
	}
	out, err := sluicefn.Process(handle, env.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if len(rows) != 4 {
		t.Fatalf("got %d rows, want 4 (the health check dropped): %s", len(rows), out)
	}
	if r := rows[0]; r["ts"] != "2026-11-22T08:30:00Z" || r["status"] != 200.0 || r["path"] != "/index.html" || r["parse_error"] != nil {
		t.Fatalf("row 0: %v", r)
	}
	if r := rows[1]; r["method"] != "POST" || r["bytes"] != 0.0 || r["referer"] != nil || r["user_agent"] != "curl/8.5.0" {
		t.Fatalf("row 1: %v", r)
	}
	if r := rows[2]; r["status"] != 404.0 || r["user_agent"] != nil {
		t.Fatalf("row 2: %v", r)
	}
	if r := rows[3]; r["parse_error"] == nil || r["raw"] != "this is not an access log line" || r["ts"] != "2026-11-22T08:31:00Z" {
		t.Fatalf("row 3: %v", r)
	}
}

// TestSchema checks schema.json against the rows the function emits: known
// column types, and every row member is a column. (Validated here without
// importing the schemas package, which the SDK examples do not depend on.)
func TestSchema(t *testing.T) {
	b, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Columns []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"columns"`
		TimeColumn string `json:"time_column"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{"string": true, "bool": true, "int32": true, "int64": true, "float32": true,
		"float64": true, "timestamp": true, "date": true, "json": true, "binary": true}
	cols := map[string]bool{}
	for _, c := range s.Columns {
		if !types[c.Type] || cols[c.Name] {
			t.Fatalf("column %+v", c)
		}
		cols[c.Name] = true
	}
	if !cols[s.TimeColumn] {
		t.Fatalf("time column %q is not a column", s.TimeColumn)
	}
	for _, name := range []string{"ts", "remote_addr", "method", "path", "protocol", "status", "bytes", "referer", "user_agent", "parse_error", "raw"} {
		if !cols[name] {
			t.Errorf("no column %s", name)
		}
	}
}
