package sink

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

func TestFlushLayout(t *testing.T) {
	d := newDir(t)
	w, next := open(t, testConfig(d))
	if next != -1 {
		t.Fatalf("Open of a new partition = %d, want -1", next)
	}
	// Rows fall in three Hive partitions, by their own (UTC) hour.
	add(t, w, logRows(t, 10,
		`{"ts":"2026-11-22T03:59:59.999999Z","level":"info","service":"api","host":"h1","message":"first","user":"u1"}`,
		`{"ts":"2026-11-22T05:00:00+02:00","level":"warn","message":"second"}`,
	), 10, 11)
	add(t, w, logRows(t, 12,
		`{"ts":"2026-11-22T04:00:00Z","message":"third","attrs":{"k":[1,2]}}`,
		`{"ts":1795318200.25,"message":"fourth"}`,
		`{"ts":"2026-11-21T23:30:00Z","message":"late"}`,
		`{"ts":"2026-11-22T04:59:59Z","message":"sixth"}`,
	), 12, 15)
	if !w.Buffered() {
		t.Fatal("not Buffered after Add")
	}
	if next := flush(t, w); next != 16 {
		t.Fatalf("Flush = %d, want 16", next)
	}
	if w.Buffered() {
		t.Fatal("Buffered after Flush")
	}
	want := []string{
		"tables/app_logs/dt=2026-11-21/hour=23/logs-2-10-15-1.parquet",
		"tables/app_logs/dt=2026-11-22/hour=03/logs-2-10-15-1.parquet",
		"tables/app_logs/dt=2026-11-22/hour=04/logs-2-10-15-1.parquet",
	}
	if got := keys(t, d, "tables/"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("files\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var size int64
	for _, k := range want {
		data, _ := d.Get(t.Context(), k)
		size += int64(len(data))
	}
	if st := w.LastFlush(); st.Files != 3 || st.Bytes != size {
		t.Fatalf("LastFlush = %+v, want 3 files of %d bytes", st, size)
	}
	data, err := d.Get(t.Context(), want[1])
	if err != nil {
		t.Fatal(err)
	}
	sch, rows := readParquetFile(t, data)
	wantRows := []string{
		`ts=2026-11-22T03:59:59.999999Z level=info service=api host=h1 message=first attrs={"user":"u1"} _partition=2 _offset=10`,
		`ts=2026-11-22T03:00:00.000000Z level=warn message=second _partition=2 _offset=11`,
		`ts=2026-11-22T03:30:00.250000Z message=fourth _partition=2 _offset=13`,
	}
	if strings.Join(rows, "\n") != strings.Join(wantRows, "\n") {
		t.Fatalf("rows of %s\n%s\nwant\n%s", want[1], strings.Join(rows, "\n"), strings.Join(wantRows, "\n"))
	}
	if ts, ok := sch.Field(0).Type.(*arrow.TimestampType); !ok || ts.Unit != arrow.Microsecond || ts.TimeZone != "UTC" {
		t.Fatalf("ts read back as %v, want timestamp[us, tz=UTC]", sch.Field(0).Type)
	}
	checkParquetMeta(t, data, 3)

	wantTable := []string{
		`tables/app_logs/dt=2026-11-21/hour=23 ts=2026-11-21T23:30:00.000000Z message=late _partition=2 _offset=14`,
		`tables/app_logs/dt=2026-11-22/hour=03 ` + wantRows[0],
		`tables/app_logs/dt=2026-11-22/hour=03 ` + wantRows[1],
		`tables/app_logs/dt=2026-11-22/hour=03 ` + wantRows[2],
		`tables/app_logs/dt=2026-11-22/hour=04 ts=2026-11-22T04:00:00.000000Z message=third attrs={"k":[1,2]} _partition=2 _offset=12`,
		`tables/app_logs/dt=2026-11-22/hour=04 ts=2026-11-22T04:59:59.000000Z message=sixth _partition=2 _offset=15`,
	}
	if got := tableRows(t, d); strings.Join(got, "\n") != strings.Join(wantTable, "\n") {
		t.Fatalf("table\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantTable, "\n"))
	}
	if p := progress(t, d); p.Next != 16 || p.Pending != nil || time.Since(p.Updated) > time.Minute {
		t.Fatalf("progress %+v, want Next 16", p)
	}

	// The next flush adds files and leaves the old ones alone; a reopened
	// writer resumes after them.
	add(t, w, tsRows(t, 16, "2026-11-22T03:10:00Z"), 16, 16)
	if next := flush(t, w); next != 17 {
		t.Fatalf("second Flush = %d", next)
	}
	if got := keys(t, d, "tables/app_logs/dt=2026-11-22/hour=03/"); len(got) != 2 || !strings.HasSuffix(got[1], "/logs-2-16-16-1.parquet") {
		t.Fatalf("hour=03 files %v", got)
	}
	if len(tableRows(t, d)) != 7 {
		t.Fatal("rows lost or duplicated by the second flush")
	}
	if _, next := open(t, testConfig(d)); next != 17 {
		t.Fatalf("Open after flushes = %d, want 17", next)
	}
	if got := keys(t, d, ""); len(got) != 5 || got[0] != testProgressKey {
		t.Fatalf("objects %v", got)
	}
}

// checkParquetMeta checks that every column chunk is zstd compressed, that ts
// is a UTC-adjusted microsecond timestamp and attrs JSON.
func checkParquetMeta(t *testing.T, data []byte, numRows int64) {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.MetaData()
	if md.NumRows != numRows || md.NumRowGroups() != 1 {
		t.Fatalf("%d rows in %d row groups, want %d in 1", md.NumRows, md.NumRowGroups(), numRows)
	}
	if !strings.HasPrefix(md.GetCreatedBy(), "sluice") {
		t.Errorf("created_by %q", md.GetCreatedBy())
	}
	rg := md.RowGroup(0)
	for c := 0; c < rg.NumColumns(); c++ {
		cc, err := rg.ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		if cc.Compression() != compress.Codecs.Zstd {
			t.Errorf("column %d compressed with %v, want zstd", c, cc.Compression())
		}
	}
	ts, ok := md.Schema.Column(0).LogicalType().(schema.TimestampLogicalType)
	if !ok || !ts.IsAdjustedToUTC() || ts.TimeUnit() != schema.TimeUnitMicros {
		t.Errorf("ts logical type %v, want TIMESTAMP(isAdjustedToUTC=true, MICROS)", md.Schema.Column(0).LogicalType())
	}
	if _, ok := md.Schema.Column(5).LogicalType().(schema.JSONLogicalType); !ok {
		t.Errorf("attrs logical type %v, want JSON", md.Schema.Column(5).LogicalType())
	}
}

func TestFlushNothing(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	if next := flush(t, w); next != -1 {
		t.Fatalf("Flush of nothing = %d, want -1", next)
	}
	if got := keys(t, d, ""); len(got) != 1 || got[0] != testProgressKey {
		t.Fatalf("Flush of nothing wrote %v (only Open's claim is expected)", got)
	}
}

func TestZeroRowBatchAdvancesProgress(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	if err := w.Add(nil, 20, 29, 500); err != nil {
		t.Fatal(err)
	}
	if !w.Buffered() {
		t.Fatal("a batch without rows is not Buffered")
	}
	if next := flush(t, w); next != 30 {
		t.Fatalf("Flush = %d, want 30", next)
	}
	if got := keys(t, d, "tables/"); len(got) != 0 {
		t.Fatalf("files %v", got)
	}
	if p := progress(t, d); p.Next != 30 || p.Pending != nil {
		t.Fatalf("progress %+v", p)
	}
	if _, next := open(t, testConfig(d)); next != 30 {
		t.Fatalf("Open = %d", next)
	}
}

func TestDue(t *testing.T) {
	cfg := testConfig(newDir(t))
	cfg.FileBytes, cfg.FileAge = 1000, time.Minute
	w, _ := open(t, cfg)
	f := func(now time.Time, want bool) {
		t.Helper()
		if got := w.Due(now); got != want {
			t.Fatalf("Due(now%+v) = %v, want %v", now.Sub(time.Now()).Round(time.Second), got, want)
		}
	}
	f(time.Now().Add(time.Hour), false) // nothing buffered is never due
	start := time.Now()
	if err := w.Add(tsRows(t, 0, "2026-11-22T03:00:00Z"), 0, 0, 600); err != nil {
		t.Fatal(err)
	}
	f(time.Now(), false)
	f(start.Add(59*time.Second), false)
	f(time.Now().Add(time.Minute), true) // by age
	if err := w.Add(nil, 1, 5, 399); err != nil {
		t.Fatal(err)
	}
	f(time.Now(), false) // 999 bytes
	if err := w.Add(nil, 6, 6, 1); err != nil {
		t.Fatal(err)
	}
	f(time.Now(), true) // 1000 bytes
	flush(t, w)
	f(time.Now().Add(time.Hour), false)
	// Age counts from the first batch after a flush.
	if err := w.Add(nil, 7, 7, 1); err != nil {
		t.Fatal(err)
	}
	f(time.Now().Add(30*time.Second), false)
	f(time.Now().Add(61*time.Second), true)
}

func TestAddOutOfOrder(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	add(t, w, tsRows(t, 5, "2026-11-22T03:00:00Z"), 5, 9)
	f := func(first, last int64) {
		t.Helper()
		err := w.Add(tsRows(t, first, "2026-11-22T03:00:00Z"), first, last, 10)
		if err == nil || !strings.Contains(err.Error(), "out of order") {
			t.Fatalf("Add(%d..%d) after 5..9: %v, want an out of order error", first, last, err)
		}
	}
	f(9, 12)
	f(3, 4)
	f(5, 9)
	f(12, 11)
	add(t, w, tsRows(t, 11, "2026-11-22T03:00:00Z"), 11, 11) // a gap is fine
	if next := flush(t, w); next != 12 {
		t.Fatalf("Flush = %d", next)
	}
	// The refused batches added nothing.
	if got := tableRows(t, d); len(got) != 2 {
		t.Fatalf("table rows %v", got)
	}
	if err := w.Add(nil, 3, 2, 0); err == nil {
		t.Fatal("Add(3..2) on an empty writer accepted")
	}
}

// Regression test, fixed: Add checks the order of batches only against the buffered ones;
// Flush resets first/last to -1, so after a flush (or after Open) a batch at
// or below the durable Next is accepted. Flush then writes its rows again in
// a file with another name (duplicates in the table) and saves a Next that
// goes backwards. Fix: keep the writer's Next (set by Open, advanced by
// Flush) and refuse first < Next in Add.
func TestAddBelowFlushedOffset(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	add(t, w, tsRows(t, 0, "2026-11-22T03:00:00Z", "2026-11-22T03:00:01Z"), 0, 9)
	flush(t, w)
	if err := w.Add(tsRows(t, 5, "2026-11-22T03:00:00Z"), 5, 7, 10); err == nil {
		next, _ := w.Flush(t.Context())
		t.Errorf("Add(5..7) after offsets 0..9 were flushed was accepted; Flush then returned %d, progress Next %d, %d table rows",
			next, progress(t, d).Next, len(tableRows(t, d)))
	}

	w2, next := open(t, testConfig(d))
	if err := w2.Add(nil, next-1, next-1, 0); err == nil {
		t.Errorf("Add(%d) right after Open returned Next %d was accepted", next-1, next)
	}
}

func TestCloseDropsUnflushed(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	add(t, w, tsRows(t, 0, "2026-11-22T03:00:00Z"), 0, 0)
	flush(t, w)
	add(t, w, tsRows(t, 1, "2026-11-22T03:00:00Z"), 1, 1)
	w.Close()
	if got := keys(t, d, "tables/"); len(got) != 1 {
		t.Fatalf("files %v", got)
	}
	if _, next := open(t, testConfig(d)); next != 1 {
		t.Fatalf("Open after Close = %d, want 1", next)
	}
}

func TestFlushHonoursContext(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	add(t, w, tsRows(t, 0, "2026-11-22T03:00:00Z"), 0, 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := w.Flush(ctx); err == nil {
		t.Fatal("Flush with a cancelled context succeeded")
	}
	if next := flush(t, w); next != 1 || len(tableRows(t, d)) != 1 {
		t.Fatalf("retried Flush = %d", next)
	}
}

// TestDueWhenIdleAndRowGroups: a writer is due once no batch came for
// FileIdle (before FileAge), and files are cut into row groups of at most
// RowGroupRows rows.
func TestDueWhenIdleAndRowGroups(t *testing.T) {
	d := newDir(t)
	cfg := testConfig(d)
	cfg.FileIdle, cfg.FileAge, cfg.RowGroupRows = 50*time.Millisecond, time.Hour, 1024
	w, _ := open(t, cfg)
	var lines []string
	for i := range 3000 {
		lines = append(lines, fmt.Sprintf(`{"ts":"2026-11-22T03:00:00Z","message":"m%d"}`, i))
	}
	add(t, w, logRows(t, 0, lines...), 0, 2999)
	if w.Due(time.Now()) {
		t.Fatal("due right after a batch")
	}
	if !w.Due(time.Now().Add(60 * time.Millisecond)) {
		t.Fatal("not due after FileIdle without batches")
	}
	flush(t, w)
	f, err := file.OpenParquetFile(d.Path("tables/app_logs/dt=2026-11-22/hour=03/logs-2-0-2999-1.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := f.NumRowGroups(); n != 3 {
		t.Fatalf("%d row groups for 3000 rows of at most 1024, want 3", n)
	}
}
