package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/ingest"
)

func TestNDJSON(t *testing.T) {
	for _, ct := range []string{"application/x-ndjson", "application/ndjson", "application/jsonl",
		"application/x-jsonlines", "application/x-ndjson; charset=utf-8", "Application/X-NDJSON"} {
		p := newProducer()
		body := "{\"n\": 1}\n\n{\"n\":2, \"s\": \"a b\"}\r\n   \n\t[1, 2]\n\"str\"\n{\"n\":5}"
		r := do(t, newHandler(p), http.MethodPost, "/v1/streams/logs/records", ct, []byte(body))
		checkRecords(t, r, p, http.StatusOK, "ok", "ok", "ok", "ok", "ok")
		checkValues(t, p, `{"n":1}`, `{"n":2,"s":"a b"}`, `[1,2]`, `"str"`, `{"n":5}`)
	}
}

func TestNDJSONKeyField(t *testing.T) {
	p := newProducer()
	r := postNDJSON(t, newHandler(p), "?key=user",
		`{"user":"u1","n":1}`,
		`{"user":7,"n":2}`,
		`{"n":3}`,
		`{"user":null,"n":4}`,
		`{"user":"u1","n":5}`,
		`{"user":{"id":1},"n":6}`,
		`{"user":"`+strings.Repeat("k", ingest.MaxKeyBytes+1)+`"}`,
		`{"user":"`+strings.Repeat("k", ingest.MaxKeyBytes)+`"}`,
		`["not","an","object"]`,
		`{"user":"\u00e9\n"}`,
	)
	checkRecords(t, r, p, http.StatusMultiStatus, "ok", "ok", "ok", "ok", "ok",
		"InvalidKey 400 line 6: key: must be a string or a scalar",
		"InvalidKey 400 line 7: key is 1025 bytes, over the 1024-byte limit",
		"ok", "ok", "ok")
	long := strings.Repeat("k", ingest.MaxKeyBytes)
	checkValues(t, p, `u1={"user":"u1","n":1}`, `7={"user":7,"n":2}`, `{"n":3}`, `{"user":null,"n":4}`,
		`u1={"user":"u1","n":5}`, long+`={"user":"`+long+`"}`, `["not","an","object"]`, "é\n"+`={"user":"\u00e9\n"}`)
	// The same key goes to the same partition.
	res := r.resp.Records
	if *res[0].Partition != *res[4].Partition || *res[4].Offset <= *res[0].Offset {
		t.Fatalf("records of key u1 at %d/%d and %d/%d", *res[0].Partition, *res[0].Offset, *res[4].Partition, *res[4].Offset)
	}
}

func TestJSONBatch(t *testing.T) {
	p := newProducer()
	r := postJSON(t, newHandler(p), "", `{"records": [
		{"data": {"n": 1}},
		{"key": "k1", "data": {"n": 2}},
		{"key": 42, "data": {"n": 3}},
		{"key": 1.5e3, "data": [true]},
		{"key": true, "data": "s"},
		{"key": null, "data": {"n": 6}},
		{"key": "", "data": {"n": 7}},
		{"key": {"a": 1}, "data": {"n": 8}},
		{"key": ["a"], "data": {"n": 9}},
		{"key": "k10"},
		{"data": {"n": 11}, "key": "\u00e9"}
	]}`)
	checkRecords(t, r, p, http.StatusMultiStatus, "ok", "ok", "ok", "ok", "ok", "ok", "ok",
		"InvalidKey 400 records[7]: key: must be a string or a scalar",
		"InvalidKey 400 records[8]: key",
		`MissingData 400 records[9]: has no "data"`,
		"ok")
	checkValues(t, p, `{"n":1}`, `k1={"n":2}`, `42={"n":3}`, `1.5e3=[true]`, `true="s"`, `{"n":6}`,
		`={"n":7}`, `é={"n":11}`)

	// ?key= works for a JSON batch too; an explicit key wins.
	p = newProducer()
	r = postJSON(t, newHandler(p), "?key=user", `{"records":[{"data":{"user":"u"}},{"key":"mine","data":{"user":"u"}}]}`)
	checkRecords(t, r, p, http.StatusOK, "ok", "ok")
	checkValues(t, p, `u={"user":"u"}`, `mine={"user":"u"}`)
}

func TestMixedGoodAndBad(t *testing.T) {
	p := newProducer()
	r := postNDJSON(t, newHandler(p), "",
		`{"n":1}`,
		`{bad`,
		`{"n":3}`,
		``,
		`[1, 2`,
		`{"n":6}`,
		`{"n":7}}`,
		`{"n":8}`)
	checkRecords(t, r, p, http.StatusMultiStatus, "ok",
		"InvalidJSON 400 line 2: invalid JSON:", "ok",
		"InvalidJSON 400 line 5: invalid JSON:", "ok",
		"InvalidJSON 400 line 7: invalid JSON:", "ok")
	checkValues(t, p, `{"n":1}`, `{"n":3}`, `{"n":6}`, `{"n":8}`)
}

func TestAllBad(t *testing.T) {
	p := newProducer()
	big := `"` + strings.Repeat("x", ingest.MaxRecordBytes) + `"`
	h := newHandler(p)
	checkRecords(t, postNDJSON(t, h, "", `{bad`, `nope`), p, http.StatusBadRequest,
		"InvalidJSON 400 line 1", "InvalidJSON 400 line 2")
	// Records that all fail the same way answer with their common status.
	checkRecords(t, postNDJSON(t, h, "", big, big), p, http.StatusRequestEntityTooLarge,
		"RecordTooLarge 413 line 1", "RecordTooLarge 413 line 2")
	// Different 4xx: 400.
	checkRecords(t, postNDJSON(t, h, "", big, `{bad`), p, http.StatusBadRequest,
		"RecordTooLarge 413 line 1", "InvalidJSON 400 line 2")
	checkRecords(t, postJSON(t, h, "", `{"records":[{"key":"k"}]}`), p, http.StatusBadRequest,
		"MissingData 400 records[0]")
	if n := len(p.produced()); n != 0 {
		t.Fatalf("%d records produced", n)
	}
}

func TestRecordSizeLimit(t *testing.T) {
	p := newProducer()
	// A 10 MiB record between two valid lines fails alone.
	huge := `{"big":"` + strings.Repeat("x", 10<<20-len(`{"big":""}`)) + `"}`
	atLimit := `"` + strings.Repeat("y", ingest.MaxRecordBytes-2) + `"`
	overLimit := `"` + strings.Repeat("z", ingest.MaxRecordBytes-1) + `"`
	r := postNDJSON(t, newHandler(p), "", `{"n":1}`, huge, `{"n":3}`, atLimit, overLimit)
	checkRecords(t, r, p, http.StatusMultiStatus, "ok",
		fmt.Sprintf("RecordTooLarge 413 line 2: record is %d bytes, over the %d-byte limit", 10<<20, ingest.MaxRecordBytes),
		"ok", "ok",
		fmt.Sprintf("RecordTooLarge 413 line 5: record is %d bytes", ingest.MaxRecordBytes+1))
	checkValues(t, p, `{"n":1}`, `{"n":3}`, atLimit)
}

func TestBodySizeLimit(t *testing.T) {
	// 64 lines of 512 KiB (newline included) are exactly MaxBodyBytes.
	line := `"` + strings.Repeat("x", 512<<10-3) + `"` + "\n"
	body := strings.Repeat(line, ingest.MaxBodyBytes/len(line))
	if len(body) != ingest.MaxBodyBytes {
		t.Fatalf("body is %d bytes", len(body))
	}
	p := newProducer()
	r := do(t, newHandler(p), http.MethodPost, "/v1/streams/logs/records", "application/x-ndjson", []byte(body))
	if r.status != http.StatusOK || len(p.produced()) != 64 {
		t.Fatalf("body of MaxBodyBytes: status %d, %d produced: %.200s", r.status, len(p.produced()), r.body)
	}
	// One byte more is refused whole, before anything is produced.
	p = newProducer()
	r = do(t, newHandler(p), http.MethodPost, "/v1/streams/logs/records", "application/x-ndjson", []byte(body+"\n"))
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.err, "nothing was accepted") {
		t.Fatalf("body over MaxBodyBytes: status %d: %.200s", r.status, r.body)
	}
	if n := len(p.produced()); n != 0 {
		t.Fatalf("%d records produced from a refused body", n)
	}
}

// TestTooManyRecords: MaxRecords records in one request are taken, one more
// refuses the request whole (413, nothing produced), in both formats, and so
// does a body of 16 million one-byte invalid lines, without a per-line
// answer for each.
func TestTooManyRecords(t *testing.T) {
	lines := make([]string, ingest.MaxRecords+1)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"i":%d}`, i)
	}
	lines[10] = "" // a blank line counts for line numbers, not records
	p := newProducer()
	r := postNDJSON(t, newHandler(p), "", lines...)
	if r.status != http.StatusOK || len(p.produced()) != ingest.MaxRecords {
		t.Fatalf("%d records: status %d, %d produced", ingest.MaxRecords, r.status, len(p.produced()))
	}
	refused := func(what string, r reply, p *fakeProducer) {
		t.Helper()
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.err, "more than 50000 records in one request; nothing was accepted") || len(p.produced()) != 0 {
			t.Fatalf("%s: status %d, %d produced: %.200s", what, r.status, len(p.produced()), r.body)
		}
	}
	p = newProducer()
	refused("NDJSON over the limit", postNDJSON(t, newHandler(p), "", append(lines, `{"i":-1}`)...), p)
	p = newProducer()
	recs := strings.Repeat(`{"data":{}},`, ingest.MaxRecords+1)
	refused("JSON over the limit", postJSON(t, newHandler(p), "", `{"records":[`+strings.TrimSuffix(recs, ",")+`]}`), p)
	p = newProducer()
	body := []byte(strings.Repeat("x\n", (ingest.MaxBodyBytes-1)/2))
	refused("a body of one-byte lines", do(t, newHandler(p), http.MethodPost, "/v1/streams/logs/records", "application/x-ndjson", body), p)
}

func TestProduceFailure(t *testing.T) {
	p := newProducer()
	p.fail = func(r *kgo.Record) error {
		if strings.Contains(string(r.Value), "fail") {
			return errors.New("NOT_ENOUGH_REPLICAS")
		}
		return nil
	}
	r := postNDJSON(t, newHandler(p), "", `{"n":1}`, `{"n":"fail"}`, `{"n":3}`)
	checkRecords(t, r, p, http.StatusMultiStatus, "ok",
		`ProduceFailed 503 cannot write to stream "logs": NOT_ENOUGH_REPLICAS; retry the record`, "ok")
	checkValues(t, p, `{"n":1}`, `{"n":3}`)

	p = newProducer()
	p.fail = func(*kgo.Record) error { return errors.New("broker down") }
	r = postNDJSON(t, newHandler(p), "", `{"n":4}`, `{"n":5}`)
	checkRecords(t, r, p, http.StatusServiceUnavailable, "ProduceFailed 503 broker down", "ProduceFailed 503 broker down")
}

func TestRequestErrors(t *testing.T) {
	p := newProducer()
	h := newHandler(p)
	f := func(method, target, ct, body string, status int, msg string) {
		t.Helper()
		r := do(t, h, method, target, ct, []byte(body))
		if r.status != status || !strings.Contains(r.err, msg) {
			t.Fatalf("%s %s %q %.50q: got %d %s, want %d ~%q", method, target, ct, body, r.status, r.body, status, msg)
		}
	}
	const url = "/v1/streams/logs/records"
	const ok = `{"records":[{"data":{}}]}`
	f(http.MethodGet, url, "", "", http.StatusMethodNotAllowed, "use POST")
	f(http.MethodPut, url, "application/json", ok, http.StatusMethodNotAllowed, "use POST")
	f(http.MethodPost, "/v1/streams/nope/records", "application/json", ok, http.StatusNotFound, `stream "nope" does not exist`)
	f(http.MethodPost, url, "text/csv", `{}`, http.StatusUnsupportedMediaType, `unsupported Content-Type "text/csv"`)
	f(http.MethodPost, url, "", `{}`, http.StatusUnsupportedMediaType, `unsupported Content-Type ""`)
	f(http.MethodPost, url, "application/json; =", ok, http.StatusUnsupportedMediaType, "cannot parse Content-Type")
	f(http.MethodPost, url, "application/x-ndjson", "", http.StatusBadRequest, "body has no records")
	f(http.MethodPost, url, "application/x-ndjson", " \n\r\n\t\n", http.StatusBadRequest, "body has no records")
	f(http.MethodPost, url, "application/json", "", http.StatusBadRequest, "invalid JSON body")
	f(http.MethodPost, url, "application/json", `{"records":[]}`, http.StatusBadRequest, "body has no records")
	f(http.MethodPost, url, "application/json", `{}`, http.StatusBadRequest, `body has no "records" array`)
	f(http.MethodPost, url, "application/json", `{"records":null}`, http.StatusBadRequest, `body has no "records" array`)
	f(http.MethodPost, url, "application/json", `{"recs":[]}`, http.StatusBadRequest, `unknown field "recs"`)
	f(http.MethodPost, url, "application/json", `{"records":[{"data":{},"extra":1}]}`, http.StatusBadRequest, `unknown field "extra"`)
	f(http.MethodPost, url, "application/json", ok+` {"records":[]}`, http.StatusBadRequest, "data after the JSON document")
	f(http.MethodPost, url, "application/json", "{\"records\":\n 5}", http.StatusBadRequest, "invalid JSON body at line 2")
	if r := do(t, h, http.MethodGet, url, "", nil); r.header.Get("Allow") != http.MethodPost {
		t.Fatalf("405 Allow header %q", r.header.Get("Allow"))
	}
	if n := len(p.produced()); n != 0 {
		t.Fatalf("%d records produced by refused requests", n)
	}
}

// Regression test, fixed: describeJSONError reports the column one past the offending byte.
// json.SyntaxError.Offset counts the bytes read up to and including the bad
// byte, so the bad byte is body[Offset-1] and its 1-based column is
// Offset-1-LastIndexByte(body[:Offset-1], '\n'); the code computes
// Offset-LastIndexByte(body[:Offset], '\n'), one more (for `{"records": [}`
// it says column 15 of a 14-character line).
func TestInvalidJSONBodyPosition(t *testing.T) {
	f := func(body, where string) {
		t.Helper()
		p := newProducer()
		r := postJSON(t, newHandler(p), "", body)
		if r.status != http.StatusBadRequest || !strings.Contains(r.err, "invalid JSON body at "+where+":") {
			t.Errorf("body %q: got %d %q, want it to say %q", body, r.status, r.err, where)
		}
		if len(p.produced()) != 0 {
			t.Errorf("body %q: records produced", body)
		}
	}
	f(`{"records": [}`, "line 1, column 14")
	f(`{x}`, "line 1, column 2")
	f("{\"records\": [\n  {\"data\": {}},\n  {\"data\": }\n]}", "line 3, column 12")
	f("{\"records\": [\n{\"data\": {}}\n\n,,]}", "line 4, column 2")
}

// Regression test, fixed: a record whose strings hold bytes that are not UTF-8 passes json.Valid
// and json.Compact and is produced as is, though RFC 8259 requires UTF-8 and
// DuckDB then refuses the Parquet file it lands in (see schemas'
// TestConvertEmitsValidUTF8). The record should fail alone with InvalidJSON
// (or be produced with the bad bytes replaced by U+FFFD).
func TestInvalidUTF8Record(t *testing.T) {
	p := newProducer()
	r := postNDJSON(t, newHandler(p), "", `{"n":1}`, "{\"msg\":\"caf\xe9\"}", `{"n":3}`)
	if len(r.resp.Records) != 3 || r.resp.Records[0].ErrorCode != "" || r.resp.Records[2].ErrorCode != "" {
		t.Fatalf("good records failed: %s", r.body)
	}
	if res := r.resp.Records[1]; res.ErrorCode != "" && res.ErrorCode != ingest.CodeInvalidJSON {
		t.Fatalf("bad record: %+v", res)
	}
	for _, rec := range p.produced() {
		if !utf8.Valid(rec.Value) {
			t.Errorf("produced a value that is not UTF-8: %q", rec.Value)
		}
	}
}

// blockingProducer holds every record until release is closed.
type blockingProducer struct {
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func (p *blockingProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.once.Do(func() { close(p.reached) })
	go func() { <-p.release; promise(r, nil) }()
}

// TestIngestMemoryBound: while requests hold MaxInFlight bytes, another is
// answered 503 with Retry-After (nothing accepted); once they are done it
// goes through. One request alone always goes, whatever its size.
func TestIngestMemoryBound(t *testing.T) {
	p := &blockingProducer{reached: make(chan struct{}), release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("/v1/streams/{stream}/records", &ingest.Handler{Producer: p, MaxInFlight: 1 << 20,
		StreamExists: func(string) bool { return true }, Log: slog.New(slog.DiscardHandler)})
	body := []byte(strings.Repeat(`{"n":1}`+"\n", 40_000)) // 320 kB: more than the bound with its copies
	first := make(chan reply, 1)
	go func() { first <- do(t, mux, http.MethodPost, "/v1/streams/logs/records", "application/x-ndjson", body) }()
	<-p.reached // the first request holds its reservation
	r := do(t, mux, http.MethodPost, "/v1/streams/logs/records", "application/x-ndjson", []byte(`{"n":2}`))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" || !strings.Contains(r.err, "--ingest-memory") {
		t.Fatalf("request over the bound: %d %v %s", r.status, r.header, r.body)
	}
	close(p.release)
	if r := <-first; r.status != http.StatusOK {
		t.Fatalf("first request: %d %.200s", r.status, r.body)
	}
	if r := do(t, mux, http.MethodPost, "/v1/streams/logs/records", "application/x-ndjson", []byte(`{"n":2}`)); r.status != http.StatusOK {
		t.Fatalf("after the first: %d %s", r.status, r.body)
	}
}

// TestRawTextLines: a text/plain body's lines (CRLF or LF) are records of
// their own, {"message": line}; blank lines are skipped.
func TestRawTextLines(t *testing.T) {
	p := newProducer()
	h := newHandler(p)
	body := "Dec  3 12:00:01 host sshd[42]: accepted\r\n\r\nplain \"quoted\" line\n\xff bad utf-8\n"
	r := do(t, h, http.MethodPost, "/v1/streams/logs/records", "text/plain; charset=utf-8", []byte(body))
	if r.status != 200 || len(r.resp.Records) != 3 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	want := []string{"Dec  3 12:00:01 host sshd[42]: accepted", `plain "quoted" line`, "\ufffd bad utf-8"}
	for i, rec := range p.produced() {
		var v struct{ Message string }
		if err := json.Unmarshal(rec.Value, &v); err != nil || v.Message != want[i] {
			t.Errorf("record %d: %s (%v), want message %q", i, rec.Value, err, want[i])
		}
	}
}

// TestGzipBody: a gzip body is inflated, and the body limit applies to the
// inflated bytes.
func TestGzipBody(t *testing.T) {
	p := newProducer()
	h := newHandler(p)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	send := func(body []byte) reply {
		req := httptest.NewRequest(http.MethodPost, "/v1/streams/logs/records", bytes.NewReader(gz(body)))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Content-Encoding", "gzip")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return reply{status: rec.Code, body: rec.Body.String()}
	}
	if r := send([]byte(`{"a":1}` + "\n" + `{"a":2}` + "\n")); r.status != 200 || len(p.produced()) != 2 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	bomb := bytes.Repeat([]byte(" "), ingest.MaxBodyBytes+1) // 32 MiB of spaces: a few KiB gzipped
	if r := send(bomb); r.status != 413 {
		t.Fatalf("an inflated body over the limit: %d %s", r.status, r.body)
	}
}

// TestErrorMessagesCapped: the first MaxErrorMessages failed records carry
// their message, the ones after it only their code and status, counted in
// errors_omitted; good records beside them are written all the same.
func TestErrorMessagesCapped(t *testing.T) {
	for _, bad := range []int{ingest.MaxErrorMessages, ingest.MaxErrorMessages + 1, 1000} {
		p := newProducer()
		lines := []string{`{"n":0}`}
		for range bad {
			lines = append(lines, `x`)
		}
		r := postNDJSON(t, newHandler(p), "", lines...)
		if r.status != http.StatusMultiStatus || r.resp.FailedRecordCount != bad || len(r.resp.Records) != bad+1 {
			t.Fatalf("%d bad lines: status %d, %d failed of %d", bad, r.status, r.resp.FailedRecordCount, len(r.resp.Records))
		}
		if omitted := max(0, bad-ingest.MaxErrorMessages); r.resp.ErrorsOmitted != omitted {
			t.Fatalf("%d bad lines: errors_omitted %d, want %d", bad, r.resp.ErrorsOmitted, omitted)
		}
		for i, rec := range r.resp.Records[1:] {
			withMessage := i < ingest.MaxErrorMessages
			if rec.ErrorCode != ingest.CodeInvalidJSON || rec.Status != 400 || (rec.Error != "") != withMessage {
				t.Fatalf("%d bad lines, record %d: %+v (message expected: %v)", bad, i+1, rec, withMessage)
			}
		}
		if n := len(p.produced()); n != 1 {
			t.Fatalf("%d records produced, want the good one", n)
		}
	}
}

// TestCountedByResult: Counted hears each request's records by result.
func TestCountedByResult(t *testing.T) {
	p := newProducer()
	var mu sync.Mutex
	got := map[string]int{}
	mux := http.NewServeMux()
	mux.Handle("/v1/streams/{stream}/records", &ingest.Handler{
		Producer: p, StreamExists: func(string) bool { return true }, Log: slog.New(slog.DiscardHandler),
		Counted: func(stream, result string, n int) { mu.Lock(); got[stream+" "+result] += n; mu.Unlock() },
	})
	postNDJSON(t, mux, "", `{"n":1}`, `{bad`, `{"n":3}`)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got["logs ok"] != 2 || got["logs InvalidJSON"] != 1 {
		t.Fatalf("counted %v, want 2 ok and 1 InvalidJSON for logs", got)
	}
}

// TestProduceFailureExplained: a cause Explain names (a full disk) is what
// the failed records' answers say, with the broker's error beside it.
func TestProduceFailureExplained(t *testing.T) {
	p := newProducer()
	p.fail = func(*kgo.Record) error { return errors.New("UNKNOWN_SERVER_ERROR") }
	mux := http.NewServeMux()
	mux.Handle("/v1/streams/{stream}/records", &ingest.Handler{
		Producer: p, StreamExists: func(string) bool { return true }, Log: slog.New(slog.DiscardHandler),
		Explain: func(err error) string {
			if strings.Contains(err.Error(), "UNKNOWN_SERVER_ERROR") {
				return "the embedded broker's disk is full"
			}
			return ""
		},
	})
	r := postNDJSON(t, mux, "", `{"n":1}`)
	checkRecords(t, r, p, http.StatusServiceUnavailable, `ProduceFailed 503 cannot write to stream "logs": the embedded broker's disk is full (UNKNOWN_SERVER_ERROR)`)
}
