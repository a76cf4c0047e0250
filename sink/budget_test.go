package sink

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/schemas"
)

// budgetRun pushes rows spread over 200 open output partitions (8 stream
// partitions × 25 hours) through writers that share a budget, flushing when
// Due, and returns the peak live Go heap (sampled after a GC; the process's
// resident size is about GOGC's factor above it) above the starting point.
func budgetRun(t testing.TB, limit int64, totalBytes int) (peak uint64, used int64) {
	d := newDir(t)
	budget := &Budget{Limit: limit}
	var writers []*Writer
	for p := range int32(8) {
		cfg := testConfig(d)
		cfg.Partition, cfg.Budget, cfg.FileBytes, cfg.FileAge = p, budget, 1<<40, time.Hour
		w, _ := open(t, cfg)
		writers = append(writers, w)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	line := `{"ts":"2026-11-22T%02d:00:00Z","level":"info","service":"api","host":"h1","message":"%0200d"}`
	schema := schemas.LogSchema()
	off := make([]int64, len(writers))
	for sent, i := 0, 0; sent < totalBytes; i++ {
		w := writers[i%len(writers)]
		var rows []schemas.Row
		n := 0
		for j := range 100 {
			data := fmt.Sprintf(line, (i+j)%25, i*100+j)
			r, err := schema.Convert([]byte(data), schemas.Meta{Timestamp: time.Now()}, schemas.Keep)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r)
			n += len(data)
		}
		p := i % len(writers)
		if err := w.Add(rows, off[p], off[p]+99, n); err != nil {
			t.Fatal(err)
		}
		off[p] += 100
		sent += n
		if w.Due(time.Now()) {
			if _, err := w.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if i%50 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc-min(ms.HeapAlloc, base))
		}
	}
	return peak, budget.Used()
}

// TestMemoryBudgetBoundsBuffers: with 200 open output partitions and an
// 8 MiB budget, the heap stays within a fixed overhead of the budget while
// 96 MiB flow through; without a budget the buffers hold everything.
func TestMemoryBudgetBoundsBuffers(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap over 96 MiB of rows twice; skipped in -short (the race-detector pass)")
	}
	const limit, total = 8 << 20, 96 << 20
	peak, _ := budgetRun(t, limit, total)
	t.Logf("peak live heap above start with an 8 MiB budget: %.1f MiB", float64(peak)/(1<<20))
	if overhead := int64(peak) - limit; overhead > 32<<20 {
		t.Fatalf("peak live heap %d MiB: more than the budget plus 32 MiB", peak>>20)
	}
	unbounded, used := budgetRun(t, 0, total)
	t.Logf("peak live heap without a budget: %.1f MiB (%d MiB still buffered)", float64(unbounded)/(1<<20), used>>20)
	if unbounded < 2*peak {
		t.Fatalf("without a budget the peak (%d MiB) should be far above the budgeted one (%d MiB): is the test measuring anything?", unbounded>>20, peak>>20)
	}
}

// BenchmarkMemoryBudget reports the peak heap with a 16 MiB budget and 200
// open output partitions (metric peak-MiB).
func BenchmarkMemoryBudget(b *testing.B) {
	for range b.N {
		peak, _ := budgetRun(b, 16<<20, 128<<20)
		b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	}
}
