package sink

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/schemas"
)

const benchRows = 10_000

// benchLogRows makes n typical log rows within one hour, varied the way real
// logs are (a few levels and services, distinct ids and messages).
func benchLogRows(b *testing.B, n int) ([]schemas.Row, int) {
	var lines []string
	size := 0
	for i := range n {
		l := fmt.Sprintf(`{"ts":"2026-11-22T03:%02d:%02d.%06dZ","level":%q,"service":%q,"host":"web-%d",`+
			`"message":"request %d served","attrs":{"order_id":"ord_%08x","user_id":%d,"amount":%d.95},"trace_id":"%032x"}`,
			i/600%60, i/10%60, i*97%1_000_000, []string{"info", "info", "warn", "error"}[i%4],
			[]string{"checkout", "api", "auth"}[i%3], i%16, i, i*7919, i%5000, i%300, i*2654435761)
		lines = append(lines, l)
		size += len(l)
	}
	return logRows(b, 0, lines...), size
}

// BenchmarkFlush adds 10,000 log rows in batches of 500 and flushes them to
// a local directory, fsync included.
func BenchmarkFlush(b *testing.B) {
	rows, size := benchLogRows(b, benchRows)
	cfg := testConfig(newDir(b))
	w, _ := open(b, cfg)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	var off int64
	iters := 0
	for b.Loop() {
		for i := 0; i < len(rows); i += 500 {
			if err := w.Add(rows[i:i+500], off, off+499, 500*size/len(rows)); err != nil {
				b.Fatal(err)
			}
			off += 500
		}
		if next, err := w.Flush(b.Context()); err != nil || next != off {
			b.Fatal(next, err)
		}
		iters++
	}
	b.ReportMetric(float64(iters*benchRows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkEncodeParquet encodes one 10,000-row record.
func BenchmarkEncodeParquet(b *testing.B) {
	rows, size := benchLogRows(b, benchRows)
	bl := schemas.LogSchema().NewBuilder(memory.NewGoAllocator())
	defer bl.Release()
	for _, r := range rows {
		bl.Append(r)
	}
	rec := bl.NewRecord()
	defer rec.Release()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	var out int
	iters := 0
	for b.Loop() {
		data, err := encodeParquet(rec, 0)
		if err != nil {
			b.Fatal(err)
		}
		out = len(data)
		iters++
	}
	b.ReportMetric(float64(iters*benchRows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(out), "file-bytes")
}
