package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluice-dev/sluice/internal/e2e"
	"github.com/sluice-dev/sluice/query"
)

// submitAsync posts sql to /v1/queries as key and returns the record.
func submitAsync(t *testing.T, s *e2e.Server, key, sql string) (int, query.Record) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"sql": sql})
	code, text := statusBody(t, s, "POST", "/v1/queries", "application/json", string(body), key)
	var rec query.Record
	if code == http.StatusAccepted {
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			t.Fatal(err)
		}
	}
	return code, rec
}

// asyncRecord reads query id's record as key.
func asyncRecord(t *testing.T, s *e2e.Server, key, id string) (int, query.Record) {
	t.Helper()
	code, text := statusBody(t, s, "GET", "/v1/queries/"+id, "", "", key)
	var rec query.Record
	if code == 200 {
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			t.Fatal(err)
		}
	}
	return code, rec
}

// waitAsync waits until query id reaches state.
func waitAsync(t *testing.T, s *e2e.Server, key, id, state string, within time.Duration) query.Record {
	t.Helper()
	var rec query.Record
	e2e.WaitFor(t, e2e.Scaled(within), "async query "+id+" to be "+state, func() error {
		var code int
		if code, rec = asyncRecord(t, s, key, id); code != 200 {
			return fmt.Errorf("GET: %d", code)
		}
		if rec.State != state {
			if rec.Done() {
				t.Fatalf("async query %s ended %s (%s), want %s", id, rec.State, rec.Error, state)
			}
			return fmt.Errorf("state %s", rec.State)
		}
		return nil
	})
	return rec
}

// download streams query id's result in format into a file.
func download(t *testing.T, s *e2e.Server, id, format string) string {
	t.Helper()
	resp, err := s.Do("GET", "/v1/queries/"+id+"/results?format="+format, "", nil, e2e.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("download %s: %d %s", format, resp.StatusCode, b)
	}
	path := filepath.Join(t.TempDir(), "result."+format)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := io.Copy(f, resp.Body); err != nil || n != resp.ContentLength {
		t.Fatalf("download %s: %d of %d bytes: %v", format, n, resp.ContentLength, err)
	}
	return path
}

// TestAsyncQueryTenMillionRows: an async query of 10,000,000 rows runs to
// succeeded, its whole result downloads as Parquet, CSV and Arrow IPC with
// exactly that many rows, a JSON page reads from an offset, and the server's peak
// memory stays far below the result's size (DuckDB writes the files; they
// are streamed to the store and back).
func TestAsyncQueryTenMillionRows(t *testing.T) {
	const rows = 10_000_000
	s := e2e.Up(t, t.TempDir(), "--query-memory", "256MB")
	code, rec := submitAsync(t, s, e2e.AdminKey, fmt.Sprintf("select range as n, 'row number ' || range as s from range(%d)", rows))
	if code != http.StatusAccepted || rec.State != query.StateQueued {
		t.Fatalf("submit: %d %+v", code, rec)
	}
	rec = waitAsync(t, s, e2e.AdminKey, rec.ID, query.StateSucceeded, 5*time.Minute)
	if rec.Rows != rows || rec.Started == nil || rec.Finished == nil || rec.Results["parquet"] == 0 || rec.Results["csv"] == 0 {
		t.Fatalf("record: %+v", rec)
	}

	pq, err := file.OpenParquetFile(download(t, s, rec.ID, "parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	if n := pq.NumRows(); n != rows {
		t.Fatalf("Parquet result: %d rows, want %d", n, rows)
	}
	pq.Close()

	f, err := os.Open(download(t, s, rec.ID, "csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		if lines == 0 && sc.Text() != "n,s" {
			t.Fatalf("CSV header %q", sc.Text())
		}
		lines++
	}
	if lines != rows+1 {
		t.Fatalf("CSV result: %d lines, want a header and %d rows", lines, rows)
	}

	resp, err := s.Do("GET", "/v1/queries/"+rec.ID+"/results?format=arrow", "", nil, e2e.AdminKey)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Arrow download: %v %v", err, resp)
	}
	ar, err := ipc.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var arrowRows int64
	for ar.Next() {
		arrowRows += ar.RecordBatch().NumRows()
	}
	if err := ar.Err(); err != nil || arrowRows != rows {
		t.Fatalf("Arrow result: %d rows (%v), want %d", arrowRows, err, rows)
	}
	ar.Release()
	resp.Body.Close()

	var page struct {
		Rows       []map[string]any `json:"rows"`
		NextOffset *int64           `json:"next_offset"`
	}
	code, body := statusBody(t, s, "GET", "/v1/queries/"+rec.ID+"/results?offset=5&limit=3", "", "", e2e.AdminKey)
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Rows) != 3 ||
		page.Rows[0]["n"] != float64(5) || page.Rows[2]["s"] != "row number 7" || page.NextOffset == nil || *page.NextOffset != 8 {
		t.Fatalf("page: %d %s", code, body)
	}
	// The result files (about 13 MiB of Parquet, 255 MiB of CSV and 440 of
	// NDJSON) passed through the server, and were read back, whole.
	const bound = 400 << 20
	peak, total := s.PeakRSS(), rec.Results["parquet"]+rec.Results["csv"]+rec.Results["ndjson"]
	t.Logf("peak RSS %d MiB; results %d MiB (Parquet %d, CSV %d)", peak>>20, total>>20, rec.Results["parquet"]>>20, rec.Results["csv"]>>20)
	if total < bound {
		t.Fatalf("the results (%d MiB) are smaller than the memory bound: the test shows nothing", total>>20)
	}
	if peak > bound {
		t.Fatalf("peak RSS %d MiB, over %d MiB", peak>>20, bound>>20)
	}
}

// TestAsyncQueryLimitsAndScopes: a query key sees only its own async
// queries (another query key gets 404, admin sees all, lists are per key);
// DELETE cancels a running query; past --async-query-concurrency queries
// wait (queued), past --async-query-queue they are refused (429); a query
// whose files, after pruning, exceed --async-query-max-scan fails before
// it runs, and one pruned under it succeeds.
func TestAsyncQueryLimitsAndScopes(t *testing.T) {
	s := e2e.Up(t, t.TempDir(), "--async-query-concurrency", "1", "--async-query-queue", "1", "--async-query-max-scan", "1KiB")
	alice := createKey(t, s, "--scope", "query:*").Key
	bob := createKey(t, s, "--scope", "query:*").Key
	const long = "select count(*) from range(1000000000000::bigint)"
	_, running := submitAsync(t, s, alice, long)
	waitAsync(t, s, alice, running.ID, query.StateRunning, time.Minute)
	code, queued := submitAsync(t, s, alice, long)
	if code != http.StatusAccepted {
		t.Fatalf("second submit: %d", code)
	}
	if code, _ := submitAsync(t, s, bob, long); code != http.StatusTooManyRequests {
		t.Fatalf("submit past the queue: %d, want 429", code)
	}
	if _, rec := asyncRecord(t, s, alice, queued.ID); rec.State != query.StateQueued {
		t.Fatalf("second query %s, want queued", rec.State)
	}

	if code, _ := asyncRecord(t, s, bob, running.ID); code != 404 {
		t.Fatalf("another query key reading alice's query: %d, want 404", code)
	}
	if code := status(t, s, "DELETE", "/v1/queries/"+running.ID, "", "", bob); code != 404 {
		t.Fatalf("another query key cancelling alice's query: %d, want 404", code)
	}
	if code, _ := asyncRecord(t, s, e2e.AdminKey, running.ID); code != 200 {
		t.Fatalf("admin reading alice's query: %d", code)
	}
	for key, want := range map[string]int{alice: 2, bob: 0} {
		var list struct{ Queries []query.Record }
		_, body := statusBody(t, s, "GET", "/v1/queries", "", "", key)
		if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Queries) != want {
			t.Fatalf("list: %s, want %d queries", body, want)
		}
	}

	for _, id := range []string{running.ID, queued.ID} {
		if code := status(t, s, "DELETE", "/v1/queries/"+id, "", "", alice); code != http.StatusAccepted {
			t.Fatalf("cancel: %d", code)
		}
		waitAsync(t, s, alice, id, query.StateCancelled, time.Minute)
	}
	if code, body := statusBody(t, s, "GET", "/v1/queries/"+running.ID+"/results?format=csv", "", "", alice); code != http.StatusConflict {
		t.Fatalf("results of a cancelled query: %d %s", code, body)
	}

	var lines strings.Builder
	for i := range 200 {
		fmt.Fprintf(&lines, "{\"service\":\"async\",\"message\":\"m%d %s\"}\n", i, strings.Repeat("x", 50))
	}
	if code, body := s.Post("/v1/streams/logs/records", "application/x-ndjson", []byte(lines.String()), nil); code != 200 {
		t.Fatalf("ingest: %d %s", code, body)
	}
	s.WaitCount("select count(*) from logs where service = 'async'", 200, time.Minute)
	_, big := submitAsync(t, s, alice, "select * from logs")
	rec := waitAsync(t, s, alice, big.ID, query.StateFailed, time.Minute)
	if !strings.Contains(rec.Error, "bytes-scanned limit") || rec.BytesScanned <= 1024 {
		t.Fatalf("over the scan limit: %+v", rec)
	}
	_, pruned := submitAsync(t, s, alice, "select count(*) from logs where dt = DATE '1999-01-01'")
	if rec := waitAsync(t, s, alice, pruned.ID, query.StateSucceeded, time.Minute); rec.Rows != 1 || rec.FilesScanned != 0 {
		t.Fatalf("pruned under the limit: %+v", rec)
	}
	for q, want := range map[string]int{"limit=10000": 200, "limit=10001": 400, "limit=0": 400, "offset=-1": 400, "format=xml": 400} {
		if code, body := statusBody(t, s, "GET", "/v1/queries/"+pruned.ID+"/results?"+q, "", "", alice); code != want {
			t.Errorf("results?%s: %d %s, want %d", q, code, body, want)
		}
	}
}

// TestAsyncQueryCLI: sluice sql --async starts a query, sluice query
// results waits for it and prints its CSV, and get and list show it.
func TestAsyncQueryCLI(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	var rec query.Record
	if err := json.Unmarshal([]byte(cli(t, s, "sql", "--async", "select 42 as answer, 'x,y' as s")), &rec); err != nil || rec.ID == "" {
		t.Fatalf("sql --async: %v %+v", err, rec)
	}
	if out := cli(t, s, "query", "results", rec.ID, "--format", "csv"); out != "answer,s\n42,\"x,y\"\n" {
		t.Fatalf("query results: %q", out)
	}
	if out := cli(t, s, "query", "get", rec.ID); !strings.Contains(out, `"state":"succeeded"`) {
		t.Fatalf("query get: %s", out)
	}
	if out := cli(t, s, "query", "list"); !strings.Contains(out, rec.ID) {
		t.Fatalf("query list: %s", out)
	}
}

// TestAsyncQueryInterrupted: a query running when its node is killed is
// failed ("interrupted") when the node starts again on the same data
// directory, not left running forever.
func TestAsyncQueryInterrupted(t *testing.T) {
	data := t.TempDir()
	s := e2e.Up(t, data)
	_, rec := submitAsync(t, s, e2e.AdminKey, "select count(*) from range(1000000000000::bigint)")
	waitAsync(t, s, e2e.AdminKey, rec.ID, query.StateRunning, time.Minute)
	s.Kill()
	s = e2e.Up(t, data)
	if rec := waitAsync(t, s, e2e.AdminKey, rec.ID, query.StateFailed, time.Minute); !strings.Contains(rec.Error, "interrupted") {
		t.Fatalf("after the restart: %+v", rec)
	}
}

// TestNamedQueries: a saved query with {{params}} runs as an async query
// with the runner's values; a name is saved once (409), a missing or extra
// parameter is refused (400), any query key may run it, only its owner
// (or admin) may delete it.
func TestNamedQueries(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	alice := createKey(t, s, "--scope", "query:*").Key
	bob := createKey(t, s, "--scope", "query:*").Key
	save := `{"name": "upto", "sql": "select count(*) as n, {{label}} as label from range({{n}})", "description": "count to n"}`
	if code, body := statusBody(t, s, "POST", "/v1/named-queries", "application/json", save, alice); code != 201 || !strings.Contains(body, `"params":["label","n"]`) {
		t.Fatalf("save: %d %s", code, body)
	}
	if code := status(t, s, "POST", "/v1/named-queries", "application/json", save, bob); code != http.StatusConflict {
		t.Fatalf("save again: %d, want 409", code)
	}
	for _, params := range []string{`{"params": {"n": 5}}`, `{"params": {"n": 5, "label": "x", "other": 1}}`} {
		if code, body := statusBody(t, s, "POST", "/v1/named-queries/upto/run", "application/json", params, bob); code != 400 {
			t.Fatalf("run with %s: %d %s, want 400", params, code, body)
		}
	}
	code, body := statusBody(t, s, "POST", "/v1/named-queries/upto/run", "application/json", `{"params": {"n": 1234, "label": "it's"}}`, bob)
	var rec query.Record
	if err := json.Unmarshal([]byte(body), &rec); code != http.StatusAccepted || err != nil {
		t.Fatalf("run: %d %s", code, body)
	}
	waitAsync(t, s, bob, rec.ID, query.StateSucceeded, time.Minute)
	if code, body := statusBody(t, s, "GET", "/v1/queries/"+rec.ID+"/results", "", "", bob); code != 200 || !strings.Contains(body, `{"n":1234,"label":"it's"}`) {
		t.Fatalf("results: %d %s", code, body)
	}
	if code := status(t, s, "DELETE", "/v1/named-queries/upto", "", "", bob); code != http.StatusForbidden {
		t.Fatalf("delete by another key: %d, want 403", code)
	}
	if code := status(t, s, "DELETE", "/v1/named-queries/upto", "", "", alice); code != http.StatusNoContent {
		t.Fatalf("delete by its owner: %d", code)
	}
	if code := status(t, s, "GET", "/v1/named-queries/upto", "", "", alice); code != 404 {
		t.Fatalf("read after delete: %d", code)
	}
}
