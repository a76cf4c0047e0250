package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/schemas"
)

const testProgressKey = "_sluice/progress/p1/logs/2.json"

func newDir(t testing.TB) *objstore.Dir {
	d, err := objstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testConfig(b objstore.Bucket) Config {
	return Config{Bucket: b, Pipeline: "p1", Stream: "logs", Partition: 2, Table: "app_logs",
		Schema: schemas.LogSchema(), FileBytes: 1 << 20, FileAge: time.Minute}
}

func open(t testing.TB, cfg Config) (*Writer, int64) {
	t.Helper()
	w, next, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, next
}

// logRows converts one log line per record, the first at offset first.
func logRows(t testing.TB, first int64, lines ...string) []schemas.Row {
	t.Helper()
	var rows []schemas.Row
	for i, l := range lines {
		m := schemas.Meta{Stream: "logs", Partition: 2, Offset: first + int64(i),
			Timestamp: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
		r, err := schemas.LogSchema().Convert([]byte(l), m, schemas.Strict)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

// tsRows makes a row per timestamp, at offsets first, first+1, ...
func tsRows(t testing.TB, first int64, ts ...string) []schemas.Row {
	t.Helper()
	var lines []string
	for _, s := range ts {
		lines = append(lines, fmt.Sprintf(`{"ts":%q,"message":"m"}`, s))
	}
	return logRows(t, first, lines...)
}

func add(t testing.TB, w *Writer, rows []schemas.Row, first, last int64) {
	t.Helper()
	if err := w.Add(rows, first, last, 100*len(rows)); err != nil {
		t.Fatal(err)
	}
}

func flush(t testing.TB, w *Writer) int64 {
	t.Helper()
	next, err := w.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func keys(t testing.TB, b objstore.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	if err := b.List(context.Background(), prefix, func(k string) error { out = append(out, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func progress(t testing.TB, b objstore.Bucket) Progress {
	t.Helper()
	data, err := b.Get(context.Background(), testProgressKey)
	if err != nil {
		t.Fatal(err)
	}
	var p Progress
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// readParquet decodes a Parquet file with arrow-go's reader and renders each
// row as "col=value ..." (nulls left out, timestamps as RFC 3339 in UTC,
// JSON as text).
func readParquetFile(t testing.TB, data []byte) (*arrow.Schema, []string) {
	t.Helper()
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, -1)
	defer tr.Release()
	var rows []string
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var cols []string
			for c, arr := range rec.Columns() {
				if arr.IsNull(i) {
					continue
				}
				v := arr.ValueStr(i)
				switch a := arr.(type) {
				case *array.Timestamp:
					unit := a.DataType().(*arrow.TimestampType).Unit
					v = a.Value(i).ToTime(unit).UTC().Format("2006-01-02T15:04:05.000000Z")
				case *array.Binary: // arrow-go reads Parquet JSON columns as binary
					v = string(a.Value(i))
				}
				cols = append(cols, rec.ColumnName(c)+"="+v)
			}
			rows = append(rows, strings.Join(cols, " "))
		}
	}
	return tbl.Schema(), rows
}

// tableRows reads every Parquet file the partition's manifest lists (what
// a query reads), each row as "<hive partition> <row>", files in key order
// and rows in file order.
func tableRows(t testing.TB, b objstore.Bucket) []string {
	t.Helper()
	return rowsOf(t, b, committedKeys(t, b))
}

// committedKeys are the keys the test partition's manifest lists, sorted.
func committedKeys(t testing.TB, b objstore.Bucket) []string {
	t.Helper()
	p := progress(t, b)
	if p.Manifest == nil {
		t.Fatal("progress has no manifest")
	}
	files, err := p.Manifest.AllFiles(context.Background(), b.Get)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Key)
	}
	slices.Sort(out)
	return out
}

// dirRows reads every Parquet file in the table's directory, committed or
// not (what a directory reader would see).
func dirRows(t testing.TB, b objstore.Bucket) []string {
	t.Helper()
	return rowsOf(t, b, keys(t, b, "tables/"))
}

func rowsOf(t testing.TB, b objstore.Bucket, keys []string) []string {
	t.Helper()
	var out []string
	for _, k := range keys {
		data, err := b.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		_, rows := readParquetFile(t, data)
		dir := k[:strings.LastIndex(k, "/")]
		for _, r := range rows {
			out = append(out, dir+" "+r)
		}
	}
	return out
}

// flakyBucket is a Bucket that refuses the Puts its fail func picks (n counts
// Puts from 0): fault injection at the storage boundary.
type flakyBucket struct {
	objstore.Bucket
	mu   sync.Mutex
	n    int
	fail func(n int, key string) bool
}

var errInjected = errors.New("injected: bucket refuses writes")

func (b *flakyBucket) Put(ctx context.Context, key string, data []byte) error {
	b.mu.Lock()
	n := b.n
	b.n++
	b.mu.Unlock()
	if b.fail != nil && b.fail(n, key) {
		return fmt.Errorf("put %q: %w", key, errInjected)
	}
	return b.Bucket.Put(ctx, key, data)
}

// arm sets the fail func and restarts the Put count.
func (b *flakyBucket) arm(fail func(n int, key string) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n, b.fail = 0, fail
}
