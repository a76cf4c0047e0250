package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/query"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// fixture is a store with tables whose files are written straight into
// their manifests, as their owners would have committed them.
type fixture struct {
	t      testing.TB
	dir    *objstore.Dir
	reg    *deploy.Registry
	hours  map[int][]byte // a Parquet file of rows in hour h of day0, by h
	engine *query.Engine
	cat    *Catalog
}

var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir, err := objstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := deploy.Open(context.Background(), dir, func(context.Context, string, int32, time.Duration) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: dir, reg: reg, hours: map[int][]byte{}}
	if f.cat, err = New(reg, dir, nil, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.cat.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	f.engine, err = query.New(query.Config{AllowedDirs: []string{f.cat.Dir()}, Threads: 2}, f.cat)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.engine.Close() })
	return f
}

// hourFile returns a Parquet file of 100 log rows within hour h of day0,
// written by the sink once per hour.
func (f *fixture) hourFile(h int) []byte {
	if data, ok := f.hours[h]; ok {
		return data
	}
	scratch, _ := objstore.NewDir(f.t.TempDir())
	cfg := sink.Config{Bucket: scratch, Pipeline: "p", Stream: "s", Table: "x", Schema: schemas.LogSchema(), FileBytes: 1 << 30, FileAge: time.Hour}
	w, _, err := sink.Open(context.Background(), cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	defer w.Close()
	var rows []schemas.Row
	for i := range 100 {
		line := fmt.Sprintf(`{"ts":%q,"level":"info","message":"m%d"}`, day0.Add(time.Duration(h)*time.Hour+time.Duration(i)*time.Second).Format(time.RFC3339), i)
		r, err := schemas.LogSchema().Convert([]byte(line), schemas.Meta{Stream: "s", Offset: int64(i)}, schemas.Keep)
		if err != nil {
			f.t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if err := w.Add(rows, 0, 99, 100); err != nil {
		f.t.Fatal(err)
	}
	if _, err := w.Flush(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	e := w.Manifest().Files[0]
	data, err := scratch.Get(context.Background(), e.Key)
	if err != nil {
		f.t.Fatal(err)
	}
	f.hours[h] = data
	return data
}

// table creates table name fed by a stream of `partitions` partitions, each
// of whose manifests lists perHour files in each of hours.
func (f *fixture) table(name string, partitions int32, hours []int, perHour int) {
	ctx := context.Background()
	if _, err := f.reg.CreateStream(ctx, deploy.Stream{Name: name, Partitions: partitions}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.reg.CreateTable(ctx, deploy.Table{Name: name, Schema: *schemas.LogSchema()}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.reg.CreatePipeline(ctx, deploy.Pipeline{Name: name, Stream: name, Table: name}); err != nil {
		f.t.Fatal(err)
	}
	fp := "fixture"
	for p := range partitions {
		m := &sink.Manifest{Table: name}
		offset := int64(0)
		for _, h := range hours {
			at := day0.Add(time.Duration(h) * time.Hour)
			for range perHour {
				data := f.hourFile(h)
				key := fmt.Sprintf("tables/%s/dt=%s/hour=%02d/%s-%d-%d-%d-1.parquet", name, at.Format(time.DateOnly), at.Hour(), name, p, offset, offset+99)
				path := f.dir.Path(key)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					f.t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					f.t.Fatal(err)
				}
				lo, hi := at, at.Add(99*time.Second)
				m.Files = append(m.Files, sink.FileEntry{Key: key, Size: int64(len(data)), Rows: 100, First: offset, Last: offset + 99,
					Part: map[string]string{"dt": at.Format(time.DateOnly), "hour": fmt.Sprintf("%02d", at.Hour())}, MinTime: &lo, MaxTime: &hi, Schema: fp})
				offset += 100
			}
		}
		data, _ := json.Marshal(sink.Progress{Next: offset, Epoch: 1, Manifest: m})
		if err := f.dir.Put(ctx, sink.Source{Pipeline: name, Stream: name, Partition: p}.ProgressKey(), data); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) count(sql string) (int64, *query.Result) {
	f.t.Helper()
	r, err := f.engine.Query(context.Background(), sql)
	if err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	n, _ := r.Rows[0][0].(int64)
	return n, r
}

func hourSQL(table string, h int) string {
	at := day0.Add(time.Duration(h) * time.Hour)
	return fmt.Sprintf("select count(*) from %s where ts >= TIMESTAMP '%s' and ts < TIMESTAMP '%s'",
		table, at.Format(time.DateTime), at.Add(time.Hour).Format(time.DateTime))
}

// TestQueryReadsManifests: a query reads exactly the files the manifests
// list, less those its predicates rule out, and says so; files in the
// directory that no manifest lists are never read.
func TestQueryReadsManifests(t *testing.T) {
	f := newFixture(t)
	f.table("logs", 2, []int{1, 2, 3}, 2) // 12 files of 100 rows
	// A file no manifest lists (a zombie's late upload): invisible.
	stray := f.dir.Path("tables/logs/dt=2026-11-01/hour=02/logs-0-0-99-7.parquet")
	if err := os.WriteFile(stray, f.hourFile(2), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, r := f.count("select count(*) from logs"); n != 1200 || r.FilesScanned != 12 || r.FilesPruned != 0 {
		t.Fatalf("count(*) = %d reading %d files (%d pruned), want 1200 from 12", n, r.FilesScanned, r.FilesPruned)
	}
	if n, r := f.count(hourSQL("logs", 2)); n != 400 || r.FilesScanned != 4 || r.FilesPruned != 8 || r.BytesScanned <= 0 {
		t.Fatalf("hour 2: %d rows from %d files (%d pruned, %d bytes), want 400 from 4 (8 pruned)", n, r.FilesScanned, r.FilesPruned, r.BytesScanned)
	}
	if n, r := f.count("select count(*) from logs where hour = 3 or level = 'x'"); n != 400 || r.FilesPruned != 0 {
		t.Fatalf("an OR prunes nothing: %d rows, %d pruned", n, r.FilesPruned)
	}
	if n, r := f.count("select count(*) from logs where dt = DATE '2026-11-02'"); n != 0 || r.FilesScanned != 0 {
		t.Fatalf("another day: %d rows from %d files", n, r.FilesScanned)
	}
	// A new commit (the progress object rewritten) is seen by the next query.
	f.table("more", 1, []int{5}, 1)
	if n, _ := f.count("select count(*) from more"); n != 100 {
		t.Fatalf("new table: %d rows", n)
	}
}

// BenchmarkHourQuery: a one-hour query on a table of 5,000 files (4
// partitions × 125 hours × 10 files), with ten other tables of 1,000 files
// each in the same store, against the same query on a table that holds only
// that hour's 40 files. The manifests make the first cost about what the
// second does (see the README, "Performance").
func BenchmarkHourQuery(b *testing.B) {
	f := newFixture(b)
	var hours []int
	for h := range 125 {
		hours = append(hours, h)
	}
	f.table("big", 4, hours, 10)
	for i := range 10 {
		f.table(fmt.Sprintf("other%d", i), 4, hours[:25], 10)
	}
	f.table("hour_only", 4, []int{60}, 10)
	for _, table := range []string{"big", "hour_only"} {
		b.Run(table, func(b *testing.B) {
			sql := hourSQL(table, 60)
			f.count(sql) // warm the manifest cache
			for b.Loop() {
				if n, r := f.count(sql); n != 4000 || r.FilesScanned != 40 {
					b.Fatalf("%d rows from %d files", n, r.FilesScanned)
				}
			}
		})
	}
}
