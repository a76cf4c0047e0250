package query

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// post sends body to the handler and returns the status and decoded JSON.
func post(t *testing.T, h http.Handler, method, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, "/v1/query", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	return rec.Code, out
}

func TestHandler(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{})
	h := e.Handler()
	big := `{"sql": "select '` + strings.Repeat("x", 2<<20) + `'"}`
	cases := []struct {
		name, method, body string
		status             int
		errPrefix          string
	}{
		{"ok", "POST", `{"sql": "select 42 as answer"}`, 200, ""},
		{"syntax", "POST", `{"sql": "selec 1"}`, 400, "Parser Error: syntax error"},
		{"unknown table", "POST", `{"sql": "select * from nope"}`, 400, "Catalog Error: Table with name nope does not exist"},
		{"two statements", "POST", `{"sql": "select 1; select 2"}`, 400, "exactly one SQL statement"},
		{"bad json", "POST", `{"sql": `, 400, "cannot decode request body"},
		{"not an object", "POST", `["select 1"]`, 400, "cannot decode request body"},
		{"trailing data", "POST", `{"sql": "select 1"} {}`, 400, "cannot decode request body: unexpected data"},
		{"missing sql", "POST", `{"query": "select 1"}`, 400, `cannot decode request body: missing "sql"`},
		{"empty sql", "POST", `{"sql": "  "}`, 400, `cannot decode request body: "sql" is empty`},
		{"wrong method", "GET", ``, 405, "method GET not allowed"},
		{"too big", "POST", big, 413, "cannot read request body: larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, h, c.method, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d (%v)", status, c.status, body)
			}
			if c.errPrefix == "" {
				return
			}
			msg, _ := body["error"].(string)
			if !strings.HasPrefix(msg, c.errPrefix) {
				t.Fatalf("error %q does not start with %q", msg, c.errPrefix)
			}
		})
	}
}

func TestHandlerTimeoutAndServerErrors(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{Timeout: 100 * time.Millisecond})
	status, body := post(t, e.Handler(), "POST", `{"sql": "select sum(i) from range(1000000000000) t(i)"}`)
	if status != http.StatusRequestTimeout || !strings.Contains(body["error"].(string), "timed out") {
		t.Fatalf("timeout: %d %v", status, body)
	}
	_ = e.Close()
	status, body = post(t, e.Handler(), "POST", `{"sql": "select 1"}`)
	if status != http.StatusInternalServerError {
		t.Fatalf("closed engine: %d %v", status, body)
	}
}

// newTestServer serves an engine whose logs table holds three rows.
func newTestServer(t *testing.T) *Client {
	t.Helper()
	e, _, dir := newTestEngine(t, Config{})
	writeParquet(t, filepath.Join(dir, "dt=2026-11-22", "hour=03", "logs-0-0-2.parquet"), logRows(0, 3))
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL + "/", HTTP: srv.Client()}
}

func TestClientAndFormat(t *testing.T) {
	c := newTestServer(t)
	res, err := c.Query(context.Background(),
		"select n, msg, ts, hour, payload, [n, n * 10] as l, if(n = 1, null, 'a,\"b\"') as odd from logs order by n")
	if err != nil {
		t.Fatal(err)
	}
	if res.RowCount != 3 || res.Truncated || res.ElapsedMs <= 0 {
		t.Fatalf("result meta: %+v", res)
	}
	golden := map[string]string{
		"table": "" +
			"n | msg | ts                   | hour | payload | l      | odd\n" +
			"--+-----+----------------------+------+---------+--------+------\n" +
			"0 | m0  | 2026-11-22T03:00:00Z |    3 | {\"i\":0} | [0,0]  | a,\"b\"\n" +
			"1 | m1  | 2026-11-22T03:00:01Z |    3 | {\"i\":1} | [1,10] | NULL\n" +
			"2 | m2  | 2026-11-22T03:00:02Z |    3 | {\"i\":2} | [2,20] | a,\"b\"\n" +
			"(3 rows; 1 files, 0 B scanned, 0 pruned)\n", // the test catalog does not know sizes
		"json": "" +
			`{"n":0,"msg":"m0","ts":"2026-11-22T03:00:00Z","hour":3,"payload":{"i":0},"l":[0,0],"odd":"a,\"b\""}` + "\n" +
			`{"n":1,"msg":"m1","ts":"2026-11-22T03:00:01Z","hour":3,"payload":{"i":1},"l":[1,10],"odd":null}` + "\n" +
			`{"n":2,"msg":"m2","ts":"2026-11-22T03:00:02Z","hour":3,"payload":{"i":2},"l":[2,20],"odd":"a,\"b\""}` + "\n",
		"csv": "" +
			"n,msg,ts,hour,payload,l,odd\n" +
			`0,m0,2026-11-22T03:00:00Z,3,"{""i"":0}","[0,0]","a,""b"""` + "\n" +
			`1,m1,2026-11-22T03:00:01Z,3,"{""i"":1}","[1,10]",` + "\n" +
			`2,m2,2026-11-22T03:00:02Z,3,"{""i"":2}","[2,20]","a,""b"""` + "\n",
	}
	for format, want := range golden {
		var buf bytes.Buffer
		if err := Format(&buf, res, format); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if buf.String() != want {
			t.Errorf("%s output\n got:\n%s\nwant:\n%s", format, buf.String(), want)
		}
	}
}

func TestClientErrors(t *testing.T) {
	c := newTestServer(t)
	_, err := c.Query(context.Background(), "select * from nope")
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") ||
		!strings.Contains(err.Error(), "Catalog Error: Table with name nope does not exist") {
		t.Fatalf("err = %v", err)
	}
	bad := &Client{BaseURL: "http://127.0.0.1:1"}
	if _, err := bad.Query(context.Background(), "select 1"); err == nil {
		t.Fatal("unreachable server: no error")
	}
}

func TestFormatEdgeCases(t *testing.T) {
	r := &Result{
		Columns:   []ResultColumn{{"x", "VARCHAR"}},
		Rows:      [][]any{{"line1\nline2"}},
		Truncated: true,
	}
	var buf bytes.Buffer
	if err := Format(&buf, r, "table"); err != nil {
		t.Fatal(err)
	}
	if want := "x\n------------\nline1\\nline2\n(1 row, truncated)\n"; buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
	err := Format(&buf, r, "xml")
	if err == nil || !strings.Contains(err.Error(), "table, json, csv") {
		t.Fatalf("unknown format: %v", err)
	}
	buf.Reset()
	if err := Format(&buf, &Result{}, "table"); err != nil || buf.String() != "\n\n(0 rows)\n" {
		t.Fatalf("empty result: %q %v", buf.String(), err)
	}
}

func BenchmarkQueryCount(b *testing.B) {
	e, _, dir := newTestEngine(b, Config{})
	for i := range 4 {
		name := filepath.Join(dir, "dt=2026-11-22", "hour=0"+string(rune('0'+i)), "logs-0-0-999.parquet")
		writeParquet(b, name, logRows(i*1000, 1000))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := e.Query(ctx, "select count(*) from logs")
		if err != nil || res.Rows[0][0] != int64(4000) {
			b.Fatalf("count: %v %v", res, err)
		}
	}
}

// BenchmarkQueryRows: 1,000 log rows back, through the temporary result
// table that bounds a result's memory (variable-width columns).
func BenchmarkQueryRows(b *testing.B) {
	e, _, dir := newTestEngine(b, Config{TempDir: b.TempDir()})
	writeParquet(b, filepath.Join(dir, "dt=2026-11-22", "hour=03", "logs-0-0-999.parquet"), logRows(0, 1000))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Query(ctx, "select ts, msg, n from logs")
		if err != nil || len(res.Rows) != 1000 {
			b.Fatalf("rows: %d %v", len(res.Rows), err)
		}
	}
}
