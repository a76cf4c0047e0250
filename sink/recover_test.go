package sink

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/schemas"
)

func putJSON(t *testing.T, b objstore.Bucket, key string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), key, data); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverProgress(t *testing.T) {
	const (
		f1 = "tables/app_logs/dt=2026-11-22/hour=03/logs-2-10-14.parquet"
		f2 = "tables/app_logs/dt=2026-11-22/hour=04/logs-2-10-14.parquet"
		f0 = "tables/app_logs/dt=2026-11-22/hour=03/logs-2-0-9.parquet" // an earlier flush
	)
	pending := Progress{Next: 10, Pending: &Pending{Next: 15, Files: []string{f1, f2}}}
	// f opens a bucket holding progress (nil: none) and the given files, and
	// checks the offset Open returns and the files left.
	f := func(p *Progress, files []string, wantNext int64, wantFiles ...string) {
		t.Helper()
		d := newDir(t)
		if p != nil {
			putJSON(t, d, testProgressKey, p)
		}
		for _, k := range files {
			if err := d.Put(t.Context(), k, []byte("PAR1")); err != nil {
				t.Fatal(err)
			}
		}
		_, next := open(t, testConfig(d))
		if next != wantNext {
			t.Fatalf("Open = %d, want %d", next, wantNext)
		}
		if got := keys(t, d, "tables/"); strings.Join(got, " ") != strings.Join(wantFiles, " ") {
			t.Fatalf("files after Open %v, want %v", got, wantFiles)
		}
		if p == nil {
			// Open claims a new partition: epoch 1, nothing written yet.
			if got := progress(t, d); got.Next != -1 || got.Epoch != 1 || got.Pending != nil {
				t.Fatalf("progress after Open of a new partition: %+v", got)
			}
			return
		}
		if got := progress(t, d); got.Next != wantNext || got.Pending != nil {
			t.Fatalf("progress after Open %+v, want Next %d and no Pending", got, wantNext)
		}
		// The files of an older release are adopted: those below Next.
		var committed []string
		for _, k := range wantFiles {
			if f, _ := parseFileKey(k); f.last < wantNext {
				committed = append(committed, k)
			}
		}
		if got := committedKeys(t, d); strings.Join(got, " ") != strings.Join(committed, " ") {
			t.Fatalf("manifest after Open %v, want %v", got, committed)
		}
	}
	// No progress: never written.
	f(nil, nil, -1)
	f(nil, []string{f0}, -1, f0)
	// Progress without a pending flush.
	f(&Progress{Next: 10}, []string{f0}, 10, f0)
	f(&Progress{Next: 0}, nil, 0)
	// A pending flush whose files all exist is rolled forward.
	f(&pending, []string{f0, f1, f2}, 15, f0, f1, f2)
	f(&Progress{Next: 10, Pending: &Pending{Next: 15}}, nil, 15)
	// One file missing: the rest of the flush is deleted, Next stays.
	f(&pending, []string{f0, f1}, 10, f0)
	f(&pending, []string{f0, f2}, 10, f0)
	f(&pending, []string{f0}, 10, f0)
}

// TestRecoverPendingEntries: a pending flush of this release carries its
// manifest entries; rolled forward they become the manifest's, rolled back
// the manifest is as before.
func TestRecoverPendingEntries(t *testing.T) {
	const (
		f0 = "tables/app_logs/dt=2026-11-22/hour=03/logs-2-0-9-1.parquet"
		f1 = "tables/app_logs/dt=2026-11-22/hour=03/logs-2-10-14-1.parquet"
	)
	for _, written := range []bool{true, false} {
		d := newDir(t)
		m := &Manifest{Table: "app_logs", Files: []FileEntry{{Key: f0, Rows: 10, First: 0, Last: 9}}}
		putJSON(t, d, testProgressKey, Progress{Next: 10, Epoch: 1, Manifest: m,
			Pending: &Pending{Next: 15, Files: []string{f1}, Entries: []FileEntry{{Key: f1, Rows: 5, First: 10, Last: 14}}}})
		for _, k := range []string{f0, f1}[:map[bool]int{true: 2, false: 1}[written]] {
			if err := d.Put(t.Context(), k, []byte("PAR1")); err != nil {
				t.Fatal(err)
			}
		}
		_, next := open(t, testConfig(d))
		want, wantNext := []string{f0, f1}, int64(15)
		if !written {
			want, wantNext = []string{f0}, 10
		}
		if got := committedKeys(t, d); next != wantNext || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("written=%v: Open = %d with manifest %v, want %d with %v", written, next, got, wantNext, want)
		}
	}
}

func TestRecoverCorruptProgress(t *testing.T) {
	for _, data := range []string{"", "{", "not json", `{"next":"ten"}`, `[]`} {
		d := newDir(t)
		if err := d.Put(t.Context(), testProgressKey, []byte(data)); err != nil {
			t.Fatal(err)
		}
		w, next, err := Open(t.Context(), testConfig(d))
		if err == nil {
			w.Close()
			t.Fatalf("Open with progress %q = %d, want an error", data, next)
		}
		if msg := err.Error(); !strings.Contains(msg, testProgressKey) || !strings.Contains(msg, "corrupt; delete it to resume") {
			t.Fatalf("Open with progress %q: error %q does not say which object and how to fix it", data, msg)
		}
		if next != -1 || w != nil {
			t.Fatalf("Open failed but returned %v, %d", w, next)
		}
	}
}

// addTwoHours buffers offsets 10..14 with rows in hours 03 and 04.
func addTwoHours(t *testing.T, w *Writer) {
	add(t, w, tsRows(t, 10, "2026-11-22T03:00:00Z", "2026-11-22T04:00:00Z"), 10, 11)
	add(t, w, tsRows(t, 12, "2026-11-22T03:01:00Z", "2026-11-22T04:01:00Z", "2026-11-22T03:02:00Z"), 12, 14)
}

const twoHoursTable = `tables/app_logs/dt=2026-11-22/hour=03 ts=2026-11-22T03:00:00.000000Z message=m _partition=2 _offset=10
tables/app_logs/dt=2026-11-22/hour=03 ts=2026-11-22T03:01:00.000000Z message=m _partition=2 _offset=12
tables/app_logs/dt=2026-11-22/hour=03 ts=2026-11-22T03:02:00.000000Z message=m _partition=2 _offset=14
tables/app_logs/dt=2026-11-22/hour=04 ts=2026-11-22T04:00:00.000000Z message=m _partition=2 _offset=11
tables/app_logs/dt=2026-11-22/hour=04 ts=2026-11-22T04:01:00.000000Z message=m _partition=2 _offset=13`

// A flush's Puts are: pending progress (0), hour=03 file (1), hour=04 file
// (2), final progress (3); a retry starts over.
var putFailures = []struct {
	name string
	fail func(n int, key string) bool
}{
	{"pending progress", func(n int, _ string) bool { return n == 0 }},
	{"first file", func(n int, _ string) bool { return n == 1 }},
	{"second file", func(n int, _ string) bool { return n == 2 }},
	{"final progress", func(n int, _ string) bool { return n == 3 }},
	{"three times", func(n int, _ string) bool { return n < 3 }},
	{"every file twice", everyFileTwice()},
}

func TestFlushRetryAfterRefusedPut(t *testing.T) {
	for _, tc := range putFailures {
		t.Run(tc.name, func(t *testing.T) {
			b := &flakyBucket{Bucket: newDir(t)}
			w, _ := open(t, testConfig(b))
			b.arm(tc.fail) // after Open's claim: count the flush's Puts only
			addTwoHours(t, w)
			failures := 0
			for {
				next, err := w.Flush(t.Context())
				if err == nil {
					if next != 15 {
						t.Fatalf("Flush = %d, want 15", next)
					}
					break
				}
				if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), `offsets 10..14 of logs/2 to table "app_logs"`) {
					t.Fatalf("Flush error %v", err)
				}
				if failures++; failures > 5 {
					t.Fatal("Flush keeps failing")
				}
				// The buffer is kept for the retry, and nothing may be added.
				if !w.Buffered() {
					t.Fatal("a failed Flush dropped the buffer")
				}
				if err := w.Add(nil, 15, 15, 0); err == nil || !strings.Contains(err.Error(), "before a failed flush was retried") {
					t.Fatalf("Add after a failed Flush: %v", err)
				}
			}
			if failures == 0 {
				t.Fatal("no Put was refused")
			}
			if got := strings.Join(tableRows(t, b), "\n"); got != twoHoursTable {
				t.Fatalf("table after retried Flush\n%s\nwant\n%s", got, twoHoursTable)
			}
			if p := progress(t, b); p.Next != 15 || p.Pending != nil {
				t.Fatalf("progress %+v", p)
			}
			// The writer goes on.
			add(t, w, tsRows(t, 15, "2026-11-22T05:00:00Z"), 15, 15)
			if next := flush(t, w); next != 16 {
				t.Fatalf("next Flush = %d", next)
			}
		})
	}
}

// TestCrashDuringFlush stops using the writer after a refused Put, as a
// crashed worker would, and resumes the partition with Open: whatever point
// the flush reached, the table ends up with exactly one copy of every row.
func TestCrashDuringFlush(t *testing.T) {
	for _, tc := range putFailures[:4] {
		t.Run(tc.name, func(t *testing.T) {
			b := &flakyBucket{Bucket: newDir(t)}
			w, _ := open(t, testConfig(b))
			b.arm(tc.fail)
			addTwoHours(t, w)
			if _, err := w.Flush(t.Context()); !errors.Is(err, errInjected) {
				t.Fatalf("Flush: %v", err)
			}
			w.Close() // the crash: the buffer is gone
			b.fail = nil
			w, next := open(t, testConfig(b))
			want := map[string]int64{"pending progress": -1, "first file": 10, "second file": 10, "final progress": 15}[tc.name]
			if next != want {
				t.Fatalf("Open after the crash = %d, want %d", next, want)
			}
			if next < 15 { // read the records again from Next
				addTwoHours(t, w)
				if next := flush(t, w); next != 15 {
					t.Fatalf("Flush = %d", next)
				}
			}
			if got := strings.Join(tableRows(t, b), "\n"); got != twoHoursTable {
				t.Fatalf("table after recovery\n%s\nwant\n%s", got, twoHoursTable)
			}
		})
	}
}

// Regression test, fixed: when encoding fails, encode has already set w.encoded (to the files it
// managed to encode, possibly none) and has taken the rows out of their
// builders, so the retried Flush that the caller makes (processors retries
// it forever) writes only those files, saves Next = last+1 and reports
// success: the rows of the partitions that failed to encode are lost. Fix:
// encode into a local map and set w.encoded only on success; since
// NewRecord has emptied the builders, make an encode error sticky (every
// later Flush returns it, telling the caller to Close and Open again, which
// rereads from the durable Next).
func TestFlushAfterEncodeError(t *testing.T) {
	saved := writerProps
	t.Cleanup(func() { writerProps = saved })
	// LZO is not implemented by arrow-go: every Write fails.
	writerProps = parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Lzo))

	d := newDir(t)
	w, _ := open(t, testConfig(d))
	addTwoHours(t, w)
	if _, err := w.Flush(t.Context()); err == nil || !strings.Contains(err.Error(), "cannot encode offsets 10..14") {
		t.Fatalf("Flush with a failing encoder: %v", err)
	}
	writerProps = saved
	next, err := w.Flush(t.Context())
	if err == nil {
		if got := strings.Join(tableRows(t, d), "\n"); got != twoHoursTable {
			t.Errorf("retried Flush returned %d (progress Next %d) but the table holds\n%s\nwant\n%s",
				next, progress(t, d).Next, got, twoHoursTable)
		}
		return
	}
	// Refusing is fine if the rows are read again after a reopen.
	w.Close()
	if _, next := open(t, testConfig(d)); next != -1 {
		t.Errorf("Open after a failed encode = %d, want -1 (nothing durable)", next)
	}
}

func TestProgressKey(t *testing.T) {
	if k := progressKey("p1", "logs", 2); k != testProgressKey {
		t.Fatalf("progressKey = %s", k)
	}
	if !objstore.ValidKey(progressKey("pipe_line", "stream_1", 2147483647)) {
		t.Fatal("progress key is not a valid object key")
	}
	w := &Writer{cfg: Config{Table: "t", Stream: "s", Partition: 0}, epoch: 3}
	if k := w.fileKey(schemas.LogSchema().PartitionPath(schemas.Row{Time: time.Date(2026, 1, 2, 23, 59, 59, 0, time.FixedZone("", -3600))}), 0, 9); k != "tables/t/dt=2026-01-03/hour=00/s-0-0-9-3.parquet" {
		t.Fatalf("fileKey = %s", k)
	}
}

// everyFileTwice refuses the first two Puts of every file of the flush of
// offsets 10..14.
func everyFileTwice() func(int, string) bool {
	seen := map[string]int{}
	return func(_ int, k string) bool {
		if !strings.HasSuffix(k, "-10-14-1.parquet") {
			return false
		}
		seen[k]++
		return seen[k] <= 2
	}
}

// TestStateRecoversWithProgress: the caller's state is recorded with the
// offsets of each flush, and after a crash at any point of a flush Open
// returns the state that goes with the offset it resumes from.
func TestStateRecoversWithProgress(t *testing.T) {
	for _, tc := range putFailures[:4] {
		t.Run(tc.name, func(t *testing.T) {
			b := &flakyBucket{Bucket: newDir(t)}
			w, _ := open(t, testConfig(b))
			if w.State() != nil {
				t.Fatalf("state of a new partition: %s", w.State())
			}
			add(t, w, tsRows(t, 0, "2026-11-22T02:00:00Z"), 0, 0)
			w.SetState([]byte(`{"seen":1}`))
			flush(t, w)
			addTwoHours(t, w)
			w.SetState([]byte(`{"seen":2}`))
			b.arm(tc.fail)
			if _, err := w.Flush(t.Context()); !errors.Is(err, errInjected) {
				t.Fatalf("Flush: %v", err)
			}
			w.Close() // the crash
			b.fail = nil
			w, next := open(t, testConfig(b))
			want := map[int64]string{1: `{"seen":1}`, 15: `{"seen":2}`}[next]
			if want == "" || string(w.State()) != want {
				t.Fatalf("Open after the crash resumes at %d with state %s, want %s", next, w.State(), want)
			}
		})
	}
}
