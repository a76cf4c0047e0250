package query

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// describe returns "name TYPE" for each column of table.
func describe(t *testing.T, e *Engine, table string) []string {
	t.Helper()
	res := mustQuery(t, e, "SELECT column_name, column_type FROM (DESCRIBE "+table+")")
	var out []string
	for _, r := range res.Rows {
		out = append(out, r[0].(string)+" "+r[1].(string))
	}
	return out
}

func TestEmptyTableHasDeclaredColumns(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{})
	if got := scalar(t, e, "select count(*) from logs"); got != int64(0) {
		t.Fatalf("count = %v (%T), want 0", got, got)
	}
	want := "ts TIMESTAMP,msg VARCHAR,payload JSON,n BIGINT,dt DATE,hour INTEGER"
	if got := strings.Join(describe(t, e, "logs"), ","); got != want {
		t.Fatalf("columns = %s, want %s", got, want)
	}
}

func TestFilesAppearAfterStart(t *testing.T) {
	e, _, dir := newTestEngine(t, Config{})
	if got := scalar(t, e, "select count(*) from logs"); got != int64(0) {
		t.Fatalf("count before files = %v", got)
	}
	part := filepath.Join(dir, "dt=2026-11-22", "hour=03")
	writeParquet(t, filepath.Join(part, "logs-0-0-9.parquet"), logRows(0, 10))
	writeParquet(t, filepath.Join(part, "logs-1-0-4.parquet"), logRows(10, 5))
	// Writers' temporary files must be ignored.
	writeParquet(t, filepath.Join(part, ".logs-2-0-99.parquet"), logRows(0, 100))
	writeParquet(t, filepath.Join(part, "logs-3-0-99.parquet.tmp"), logRows(0, 100))

	if got := scalar(t, e, "select count(*) from logs"); got != int64(15) {
		t.Fatalf("count = %v, want 15", got)
	}
	res := mustQuery(t, e, "select typeof(dt), typeof(hour), dt, hour, count(*) from logs group by all")
	want := []any{"DATE", "INTEGER", "2026-11-22", int32(3), int64(15)}
	if len(res.Rows) != 1 || !equalRow(res.Rows[0], want) {
		t.Fatalf("hive columns = %v, want %v", res.Rows, want)
	}
	wantCols := "ts TIMESTAMP,msg VARCHAR,payload JSON,n BIGINT,dt DATE,hour INTEGER"
	if got := strings.Join(describe(t, e, "logs"), ","); got != wantCols {
		t.Fatalf("columns = %s, want %s", got, wantCols)
	}

	// More files, one with a new column, show up without any restart.
	writeParquet(t, filepath.Join(dir, "dt=2026-11-23", "hour=00", "logs-0-10-12.parquet"),
		"SELECT 1::BIGINT AS n, 'late' AS msg, 42 AS extra")
	if got := scalar(t, e, "select count(*) from logs where dt = DATE '2026-11-23'"); got != int64(1) {
		t.Fatalf("count of new partition = %v, want 1", got)
	}
	if got := scalar(t, e, "select extra from logs where extra is not null"); got != int32(42) {
		t.Fatalf("extra = %v (%T), want 42", got, got)
	}
}

func equalRow(got, want []any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestVanishedFilesFallBackToEmptyView(t *testing.T) {
	e, _, dir := newTestEngine(t, Config{})
	path := filepath.Join(dir, "dt=2026-11-22", "hour=03", "logs-0-0-9.parquet")
	writeParquet(t, path, logRows(0, 10))
	if got := scalar(t, e, "select count(*) from logs"); got != int64(10) {
		t.Fatalf("count = %v, want 10", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, e, "select count(*) from logs"); got != int64(0) {
		t.Fatalf("count after delete = %v, want 0", got)
	}
}

func TestCatalogChanges(t *testing.T) {
	e, cat, dir := newTestEngine(t, Config{})
	other := filepath.Join(filepath.Dir(dir), "metrics")
	cat.set(logsTable(dir), Table{Name: "Metrics", Dir: other, Columns: []Column{{"v", "DOUBLE"}}})
	if got := scalar(t, e, "select count(*) from metrics"); got != int64(0) {
		t.Fatalf("count = %v", got)
	}
	cat.set(logsTable(dir))
	_, err := e.Query(context.Background(), "select count(*) from metrics")
	if err == nil || !IsUserError(err) || !strings.Contains(err.Error(), "Catalog Error") {
		t.Fatalf("dropped table: err = %v, want a catalog user error", err)
	}
	// A table outside the allowed directories is not exposed, and says why.
	cat.set(logsTable(dir), Table{Name: "secret", Dir: "/etc", Columns: []Column{{"v", "DOUBLE"}}})
	_, err = e.Query(context.Background(), "select * from secret")
	if err == nil || !strings.Contains(err.Error(), "not inside the allowed directories") {
		t.Fatalf("outside table: err = %v", err)
	}
	if got := scalar(t, e, "select count(*) from logs"); got != int64(0) {
		t.Fatalf("other tables must keep working, count = %v", got)
	}
}

func TestUserErrors(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{})
	cases := map[string]string{
		"selec 1":                 "Parser Error",
		"select * from nope":      "Catalog Error",
		"select nope from logs":   "Binder Error",
		"select 1; select 2":      "exactly one SQL statement",
		"  -- nothing":            "exactly one SQL statement",
		"create table t (a int)":  "CREATE statements are not allowed",
		"drop view logs":          "DROP statements are not allowed",
		"attach ':memory:' as m2": "ATTACH statements are not allowed",
		"set variable x = 1":      "SET/RESET statements are not allowed",
		"select ?":                "query parameters",
		"select $1 from logs":     "query parameters",
		"call pragma_version()":   "CALL statements are not allowed",
	}
	for q, want := range cases {
		_, err := e.Query(context.Background(), q)
		if err == nil {
			t.Errorf("%q: no error", q)
			continue
		}
		if !IsUserError(err) {
			t.Errorf("%q: IsUserError false for %v", q, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q does not contain %q", q, err, want)
		}
	}
	if got := scalar(t, e, "select count(*) from logs"); got != int64(0) {
		t.Fatalf("view damaged: %v", got)
	}
}

func TestIsUserErrorClassification(t *testing.T) {
	if IsUserError(nil) || IsUserError(errors.New("disk on fire")) {
		t.Fatal("plain errors are not user errors")
	}
	if !IsUserError(context.DeadlineExceeded) {
		t.Fatal("a timeout is a user error")
	}
}

func TestTimeout(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := e.Query(context.Background(), "select sum(i) from range(1000000000000) t(i)")
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("long query did not fail")
	}
	t.Logf("timed out after %v", elapsed)
	if elapsed > 30*time.Second { // the query runs for hours if not interrupted
		t.Fatalf("timeout took %v", elapsed)
	}
	if !IsUserError(err) || !isTimeout(err) || statusFor(err) != 408 {
		t.Fatalf("timeout error misclassified: %v", err)
	}
	if !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("error does not say it timed out: %v", err)
	}
	if got := scalar(t, e, "select 41 + 1"); got != int32(42) {
		t.Fatalf("next query = %v", got)
	}
}

func TestMaxRows(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{MaxRows: 5})
	res := mustQuery(t, e, "select * from range(100)")
	if len(res.Rows) != 5 || res.RowCount != 5 || !res.Truncated {
		t.Fatalf("rows=%d count=%d truncated=%v", len(res.Rows), res.RowCount, res.Truncated)
	}
	res = mustQuery(t, e, "select * from range(5);")
	if len(res.Rows) != 5 || res.Truncated {
		t.Fatalf("exactly MaxRows: rows=%d truncated=%v", len(res.Rows), res.Truncated)
	}
	// Order survives the LIMIT wrapper, also with parallel sorting.
	res = mustQuery(t, e, "select i from range(300000) t(i) order by i desc -- newest first")
	for k, row := range res.Rows {
		if row[0] != int64(299999-k) {
			t.Fatalf("row %d = %v, want %d", k, row[0], 299999-k)
		}
	}
	// Statements that cannot be wrapped still run.
	res = mustQuery(t, e, "explain select 1")
	if len(res.Rows) == 0 || res.Columns[0].Name == "" {
		t.Fatalf("explain: %+v", res)
	}
}

func TestConcurrentQueriesWhileFilesArrive(t *testing.T) {
	e, cat, dir := newTestEngine(t, Config{})
	other := Table{Name: "other", Dir: filepath.Join(filepath.Dir(dir), "other"), Columns: []Column{{"v", "INTEGER"}}}
	done := make(chan error, 8)
	for w := range 8 {
		go func() {
			var err error
			for i := 0; i < 20 && err == nil; i++ {
				_, err = e.Query(context.Background(), "select count(*), max(n) from logs")
				if w%2 == 0 && i == 10 {
					cat.set(logsTable(dir), other)
				}
			}
			done <- err
		}()
	}
	for i := range 5 {
		name := filepath.Join(dir, "dt=2026-11-22", "hour=03", "logs-0-"+strconv.Itoa(i)+".parquet")
		writeParquet(t, name, logRows(i*10, 10))
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := scalar(t, e, "select count(*) from logs"); got != int64(50) {
		t.Fatalf("count = %v, want 50", got)
	}
}

// TestBrokenFilesFailWithReason: files that do not fit the declared
// partitioning fail the query that reads them, saying which table.
func TestBrokenFilesFailWithReason(t *testing.T) {
	e, _, dir := newTestEngine(t, Config{})
	if got := scalar(t, e, "select count(*) from logs"); got != int64(0) {
		t.Fatalf("count = %v", got)
	}
	// The file lacks the hour= partition the catalog declares.
	writeParquet(t, filepath.Join(dir, "dt=2026-11-22", "logs-0-0-2.parquet"), logRows(0, 3))
	_, err := e.Query(context.Background(), "select count(*) from logs")
	if err == nil || !strings.Contains(err.Error(), `cannot create the view of table "logs"`) {
		t.Fatalf("err = %v, want the view setup problem", err)
	}
}

// TestMaxResultBytes: a result is cut where its rows reach MaxResultBytes,
// so one SELECT of wide rows cannot fill the server's memory; the answer
// says which limit cut it.
func TestMaxResultBytes(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{MaxResultBytes: 1 << 20, TempDir: t.TempDir(), MemoryLimit: "256MB"})
	res := mustQuery(t, e, "select i, repeat('x', 2000) from range(10000) t(i) order by i desc")
	if !res.Truncated || len(res.Rows) < 400 || len(res.Rows) > 600 || !strings.Contains(res.TruncatedBy, "result limit") {
		t.Fatalf("rows=%d truncated=%v by %q: want about 500 rows of 2 kB in 1 MiB", len(res.Rows), res.Truncated, res.TruncatedBy)
	}
	for k, row := range res.Rows { // the first rows, in order, across pages
		if row[0] != int64(9999-k) {
			t.Fatalf("row %d = %v, want %d", k, row[0], 9999-k)
		}
	}
	// A result DuckDB cannot hold within its memory limit fails clearly
	// (503), and does not take the server's memory with it.
	_, err := e.Query(context.Background(), "select repeat('x', 400000) from range(10000)")
	if err == nil || statusFor(err) != http.StatusServiceUnavailable || !strings.Contains(publicMessage(err), "--query-memory") {
		t.Fatalf("a 4 GB result: %v", err)
	}
	res = mustQuery(t, e, "select repeat('x', 1000) from range(100)")
	if res.Truncated || len(res.Rows) != 100 {
		t.Fatalf("a result under the limit: rows=%d truncated=%v", len(res.Rows), res.Truncated)
	}
}

// TestQuerySlots: past MaxConcurrent running queries, the next waits for a
// slot, and gives up at its timeout saying why.
func TestQuerySlots(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{MaxConcurrent: 1, Timeout: 2 * time.Second})
	e.slots <- struct{}{} // a query that holds the only slot
	_, err := e.Query(context.Background(), "select 1")
	if err == nil || !strings.Contains(err.Error(), "query slots") || statusFor(err) != http.StatusRequestTimeout {
		t.Fatalf("with every slot taken: %v", err)
	}
	<-e.slots
	mustQuery(t, e, "select 1")
}

// TestJSONNumbersExact: numbers inside JSON values come back as written,
// also past 2^53.
func TestJSONNumbersExact(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{TempDir: t.TempDir()})
	res := mustQuery(t, e, `select '{"id": 9007199254740993, "price": 0.1, "n": [1e400]}'::JSON as j`)
	out, err := json.Marshal(res.Rows[0][0])
	if err != nil || string(out) != `{"id":9007199254740993,"n":[1e400],"price":0.1}` {
		t.Fatalf("JSON value %s (%v)", out, err)
	}
}

// TestObserveAndQueue: Observe hears every query with its error kind, and
// Waiting counts the queries that wait for a slot.
func TestObserveAndQueue(t *testing.T) {
	var mu sync.Mutex
	var kinds []string
	e, _, _ := newTestEngine(t, Config{MaxConcurrent: 1, Timeout: 5 * time.Second, Observe: func(st QueryStats) {
		mu.Lock()
		kinds = append(kinds, st.ErrorKind)
		mu.Unlock()
	}})
	mustQuery(t, e, "select 1")
	e.Query(context.Background(), "select nope from nowhere")
	e.slots <- struct{}{} // a query that holds the only slot
	done := make(chan struct{})
	go func() { defer close(done); e.Query(context.Background(), "select 2") }()
	for deadline := time.Now().Add(5 * time.Second); e.Waiting() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Waiting = %d with a query waiting for the only slot", e.Waiting())
		}
	}
	if e.Running() != 1 {
		t.Fatalf("Running = %d", e.Running())
	}
	<-e.slots
	<-done
	mu.Lock()
	defer mu.Unlock()
	if e.Waiting() != 0 || strings.Join(kinds, ",") != ",user," {
		t.Fatalf("Waiting %d, kinds %q: want 0 and ok, user, ok", e.Waiting(), kinds)
	}
}
