package sink

import (
	"sync"

	"fmt"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVisibleHidesMergedFiles(t *testing.T) {
	keys := []string{
		"tables/t/dt=2026-11-22/hour=03/s-0-0-9.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-10-19.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-0-19.parquet",  // merged: hides the two above
		"tables/t/dt=2026-11-22/hour=03/s-0-20-29.parquet", // after the merge
		"tables/t/dt=2026-11-22/hour=03/s-1-0-9.parquet",   // another partition
		"tables/t/dt=2026-11-22/hour=04/s-0-5-9.parquet",   // another directory
		"tables/t/dt=2026-11-22/hour=03/other.parquet",     // not the sink's
	}
	want := []string{
		"tables/t/dt=2026-11-22/hour=03/other.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-0-19.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-20-29.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-1-0-9.parquet",
		"tables/t/dt=2026-11-22/hour=04/s-0-5-9.parquet",
	}
	if got := Visible(keys); !slices.Equal(got, want) {
		t.Fatalf("Visible =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCompactMergesCommittedSmallFiles: small committed files of a partition
// are merged into one with the same rows; files at or past the committed
// TestCompactMergesSmallFiles: the owner's small committed files of one
// Hive directory are merged into one with the same rows, swapped into the
// manifest in one write; the merged-away files are retired, still on disk
// for the queries that listed them, and deleted after the grace period.
func TestCompactMergesSmallFiles(t *testing.T) {
	d := newDir(t)
	cfg := testConfig(d)
	cfg.RetireGrace = time.Hour
	w, _ := open(t, cfg)
	for i := range int64(5) { // five flushes, offsets 0..4 one at a time, all in hour 03
		add(t, w, tsRows(t, i, "2026-11-22T03:00:00Z"), i, i)
		flush(t, w)
	}
	add(t, w, tsRows(t, 5, "2026-11-22T04:00:00Z"), 5, 5) // buffered, not committed: left alone
	before := strings.Join(tableRows(t, d), "\n")
	n, err := w.Compact(t.Context())
	if err != nil || n != 5 {
		t.Fatalf("Compact = %d, %v; want 5 files merged", n, err)
	}
	want := []string{"tables/app_logs/dt=2026-11-22/hour=03/logs-2-0-4-1.parquet"}
	if got := committedKeys(t, d); !slices.Equal(got, want) {
		t.Fatalf("manifest after merge: %v, want %v", got, want)
	}
	if all := keys(t, d, "tables/"); len(all) != 6 {
		t.Fatalf("merged-away files deleted before the grace period: %v", all)
	}
	if p := progress(t, d); len(p.Manifest.Retired) != 5 || p.Manifest.Files[0].Rows != 5 || p.Manifest.Files[0].First != 0 || p.Manifest.Files[0].Last != 4 {
		t.Fatalf("manifest after merge: %+v", p.Manifest)
	}
	if after := strings.Join(tableRows(t, d), "\n"); after != before {
		t.Fatalf("rows changed by compaction:\n%s\nwant\n%s", after, before)
	}
	if next := flush(t, w); next != 6 {
		t.Fatalf("flush after compaction: next %d", next)
	}
	// Past the grace period the retired files go.
	w.manifest.Retired[0].At = time.Now().Add(-2 * time.Hour)
	if _, err := w.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if all := keys(t, d, "tables/"); len(all) != 6 || len(progress(t, d).Manifest.Retired) != 4 {
		t.Fatalf("after the grace period of one retired file: %v, retired %v", all, progress(t, d).Manifest.Retired)
	}
}

// TestCompactCrashKeepsOneCopy: a compaction interrupted after its pending
// record (merged file written or not) is resolved by the next claim: the
// table holds each row once, in the old files or in the merged one.
func TestCompactCrashKeepsOneCopy(t *testing.T) {
	for _, upload := range []bool{false, true} {
		t.Run(fmt.Sprint("uploaded=", upload), func(t *testing.T) {
			d := newDir(t)
			fb := &flakyBucket{Bucket: d}
			w, _ := open(t, testConfig(fb))
			for i := range int64(3) {
				add(t, w, tsRows(t, i, "2026-11-22T03:00:00Z"), i, i)
				flush(t, w)
			}
			before := strings.Join(tableRows(t, d), "\n")
			fb.arm(func(n int, key string) bool {
				return strings.HasSuffix(key, ".json") && n > 0 || !upload && strings.HasSuffix(key, ".parquet")
			}) // the pending record lands, then the store fails
			if _, err := w.Compact(t.Context()); err == nil {
				t.Fatal("Compact succeeded on a failing store")
			}
			fb.arm(nil)
			open(t, testConfig(d)) // the next owner
			if after := strings.Join(tableRows(t, d), "\n"); after != before {
				t.Fatalf("rows after the interrupted compaction:\n%s\nwant\n%s", after, before)
			}
			if p := progress(t, d); p.Pending != nil || len(p.Manifest.Files) != map[bool]int{false: 3, true: 1}[upload] {
				t.Fatalf("progress after recovery: %+v", p)
			}
		})
	}
}

// peakAllocator counts the most bytes allocated at once.
type peakAllocator struct {
	memory.Allocator
	mu        sync.Mutex
	cur, peak int64
}

func (a *peakAllocator) track(n int64) {
	a.mu.Lock()
	a.cur += n
	a.peak = max(a.peak, a.cur)
	a.mu.Unlock()
}

func (a *peakAllocator) Allocate(n int) []byte { a.track(int64(n)); return a.Allocator.Allocate(n) }
func (a *peakAllocator) Free(b []byte)         { a.track(-int64(len(b))); a.Allocator.Free(b) }
func (a *peakAllocator) Reallocate(n int, b []byte) []byte {
	a.track(int64(n - len(b)))
	return a.Allocator.Reallocate(n, b)
}

// TestCompactStreamsRows: a merge reads its files a batch at a time, so
// what it holds does not grow with the run's rows, however well they
// compressed (a run of 64 MiB of zstd files once held gigabytes).
func TestCompactStreamsRows(t *testing.T) {
	if testing.Short() {
		t.Skip("80 MB of rows: slow under the race detector (scripts/test runs it in the full step)")
	}
	d := newDir(t)
	cfg := testConfig(d)
	cfg.FileBytes = 1 << 30
	w, _ := open(t, cfg)
	long := strings.Repeat("x", 1000)
	const files, perFile = 8, 10_000
	for f := range int64(files) {
		lines := make([]string, perFile)
		for i := range lines {
			lines[i] = fmt.Sprintf(`{"ts":"2026-11-22T03:00:00Z","message":"%s %d"}`, long, i)
		}
		add(t, w, logRows(t, f*perFile, lines...), f*perFile, f*perFile+perFile-1)
		flush(t, w)
	}
	alloc := &peakAllocator{Allocator: memory.NewGoAllocator()}
	mergeAlloc = alloc
	t.Cleanup(func() { mergeAlloc = memory.DefaultAllocator })
	if n, err := w.Compact(t.Context()); err != nil || n != files {
		t.Fatalf("Compact = %d, %v", n, err)
	}
	raw := int64(files * perFile * len(long)) // 80 MB of rows
	t.Logf("the merge of %d MB of rows held at most %.1f MB", raw>>20, float64(alloc.peak)/(1<<20))
	if alloc.peak == 0 || alloc.peak > raw/3 {
		t.Fatalf("the merge held %d MB at once for %d MB of rows: it should stream them", alloc.peak>>20, raw>>20)
	}
	if p := progress(t, d); len(p.Manifest.Files) != 1 || p.Manifest.Files[0].Rows != files*perFile {
		t.Fatalf("after the merge: %+v", p.Manifest.Files)
	}
}
