package sink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// fileRef is a table file named by the sink:
// tables/<table>/<hive dirs>/<stream>-<partition>-<first>-<last>.parquet.
type fileRef struct {
	key         string
	dir         string // the Hive directory
	stream      string
	partition   int32
	first, last int64
}

// group is the files of one Hive directory, stream and partition.
func (f fileRef) group() string { return fmt.Sprintf("%s\x00%s\x00%d", f.dir, f.stream, f.partition) }

func (f fileRef) contains(g fileRef) bool {
	return f.key != g.key && f.first <= g.first && g.last <= f.last
}

func parseFileKey(key string) (fileRef, bool) {
	dir, name := path.Split(key)
	base, ok := strings.CutSuffix(name, ".parquet")
	if !ok {
		return fileRef{}, false
	}
	// Stream names have no '-', so the last three fields are numbers.
	parts := strings.Split(base, "-")
	if len(parts) != 4 {
		return fileRef{}, false
	}
	f := fileRef{key: key, dir: strings.TrimSuffix(dir, "/"), stream: parts[0]}
	if _, err := fmt.Sscanf(parts[1]+" "+parts[2]+" "+parts[3], "%d %d %d", &f.partition, &f.first, &f.last); err != nil || f.first > f.last {
		return fileRef{}, false
	}
	return f, true
}

// Visible filters a table's Parquet keys down to the ones a query must read:
// a file whose offset range lies within another file of the same directory,
// stream and partition has been merged into it by compaction, so it is left
// out. This is what makes compaction atomic for readers: the merged file
// supersedes the small ones the instant it exists (one atomic write), and
// deleting them afterwards changes nothing a query sees. Keys not named by
// the sink are kept as they are.
func Visible(keys []string) []string {
	groups := map[string][]fileRef{}
	var out []string
	for _, k := range keys {
		if f, ok := parseFileKey(k); ok {
			groups[f.group()] = append(groups[f.group()], f)
		} else {
			out = append(out, k)
		}
	}
	for _, fs := range groups {
		for _, f := range fs {
			if !slices.ContainsFunc(fs, func(g fileRef) bool { return g.contains(f) }) {
				out = append(out, f.key)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Compactor merges a table's small files: within each Hive directory and
// stream partition, runs of consecutive files smaller than TargetBytes are
// rewritten as one file named by the run's offset range; the next pass
// deletes them (queries that listed them just before may still be reading).
//
// It only touches files below the partition's committed offset (Committed),
// never a flush that may still be rolled back. A crash between writing the
// merged file and deleting the small ones leaves them superseded (Visible
// hides them) and the next pass deletes them, as it does after every merge.
type Compactor struct {
	Bucket objstore.Bucket
	Table  string
	// Schema is the Arrow schema the sink writes the table with. Parquet
	// readers return JSON columns as plain binary; merged files are written
	// with the table's types again, or JSON would turn into BLOB.
	Schema *arrow.Schema
	// Committed returns the first offset not yet durable for a stream
	// partition (-1 if unknown: nothing of it is compacted).
	Committed    func(ctx context.Context, stream string, partition int32) (int64, error)
	TargetBytes  int64 // files at least this big are left alone (default 64 MiB)
	RowGroupRows int64 // row groups of merged files (0: RowGroupRows)
	Log          *slog.Logger
}

// Run does one compaction pass and returns how many files it merged away.
func (c *Compactor) Run(ctx context.Context) (int, error) {
	groups := map[string][]fileRef{}
	err := c.Bucket.List(ctx, "tables/"+c.Table+"/", func(key string) error {
		if f, ok := parseFileKey(key); ok {
			groups[f.group()] = append(groups[f.group()], f)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot list table %q for compaction: %w", c.Table, err)
	}
	merged := 0
	for _, fs := range groups {
		n, err := c.compactGroup(ctx, fs)
		merged += n
		if err != nil {
			return merged, err
		}
	}
	return merged, nil
}

func (c *Compactor) compactGroup(ctx context.Context, fs []fileRef) (int, error) {
	// Files superseded by an earlier merge go first.
	var live []fileRef
	for _, f := range fs {
		if slices.ContainsFunc(fs, func(g fileRef) bool { return g.contains(f) }) {
			if err := c.Bucket.Delete(ctx, f.key); err != nil {
				return 0, err
			}
			continue
		}
		live = append(live, f)
	}
	slices.SortFunc(live, func(a, b fileRef) int { return int(a.first - b.first) })
	committed, err := c.Committed(ctx, live[0].stream, live[0].partition)
	if err != nil {
		return 0, err
	}
	merged := 0
	var run []fileRef
	var runBytes int64
	for _, f := range live {
		size, err := c.Bucket.Stat(ctx, f.key)
		if err != nil {
			return merged, err
		}
		// A run stops at a big file, an uncommitted one, or once it holds
		// a target's worth of data (which also bounds the merge's memory).
		if size < c.target() && f.last < committed && runBytes+size <= c.target() {
			run = append(run, f)
			runBytes += size
			continue
		}
		n, err := c.merge(ctx, run)
		merged += n
		if err != nil {
			return merged, err
		}
		run, runBytes = nil, 0
		if size < c.target() && f.last < committed {
			run, runBytes = []fileRef{f}, size
		}
	}
	n, err := c.merge(ctx, run)
	return merged + n, err
}

func (c *Compactor) target() int64 {
	if c.TargetBytes <= 0 {
		return 64 << 20
	}
	return c.TargetBytes
}

// merge rewrites run (consecutive files of one group) as one file, then
// deletes them. Runs of fewer than two files, or of files whose schemas
// differ (a table whose schema evolved), are left alone.
func (c *Compactor) merge(ctx context.Context, run []fileRef) (int, error) {
	if len(run) < 2 {
		return 0, nil
	}
	var recs []arrow.RecordBatch
	var readers []*file.Reader
	defer func() {
		release(recs)
		// The readers own buffers the batches point into: close them last.
		for _, r := range readers {
			r.Close()
		}
	}()
	var schema *arrow.Schema
	for _, f := range run {
		batches, pf, err := c.read(ctx, f.key)
		if pf != nil {
			readers = append(readers, pf)
		}
		if err != nil {
			release(batches)
			return 0, err
		}
		for _, rec := range batches {
			conformed, ok := conform(rec, c.Schema)
			rec.Release()
			if !ok { // a file of an older schema: leave the run alone
				return 0, nil
			}
			recs = append(recs, conformed)
			schema = conformed.Schema()
		}
	}
	if schema == nil {
		return 0, nil
	}
	tbl := array.NewTableFromRecords(schema, recs)
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, rowGroupRows(c.RowGroupRows), propsFor(c.RowGroupRows), pqarrow.DefaultWriterProps()); err != nil {
		return 0, fmt.Errorf("cannot encode merged file of table %q: %w", c.Table, err)
	}
	first, last := run[0], run[len(run)-1]
	key := fmt.Sprintf("%s/%s-%d-%d-%d.parquet", first.dir, first.stream, first.partition, first.first, last.last)
	if err := c.Bucket.Put(ctx, key, buf.Bytes()); err != nil {
		return 0, fmt.Errorf("cannot write merged file %q: %w", key, err)
	}
	// The merged files are now superseded; they are deleted at the next
	// pass, so that queries which listed them before this instant can
	// still read them.
	return len(run), nil
}

// read loads one Parquet object as record batches. The caller releases
// them, then closes the reader, whose buffers they may point into (closing
// it first lets later reads overwrite the values: seen in tests).
func (c *Compactor) read(ctx context.Context, key string) ([]arrow.RecordBatch, *file.Reader, error) {
	data, err := c.Bucket.Get(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read %q: %w", key, err)
	}
	r, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, pf, fmt.Errorf("cannot read %q: %w", key, err)
	}
	tbl, err := r.ReadTable(ctx)
	if err != nil {
		return nil, pf, fmt.Errorf("cannot read %q: %w", key, err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, -1)
	defer tr.Release()
	var out []arrow.RecordBatch
	for tr.Next() {
		rec := tr.RecordBatch()
		rec.Retain()
		out = append(out, rec)
	}
	return out, pf, nil
}

// Loop runs a pass every interval until ctx ends.
func (c *Compactor) Loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := c.Run(ctx); err != nil && ctx.Err() == nil {
			c.Log.Warn("compaction failed; retrying at the next pass", "table", c.Table, "err", err)
		} else if n > 0 {
			c.Log.Info("compacted", "table", c.Table, "files", n)
		}
	}
}

// VisibleFiles lists the local paths of table's Parquet files in a directory
// store (or a mirror laid out like one) that a query must read (see Visible).
func VisibleFiles(ctx context.Context, d *objstore.Dir, table string) ([]string, error) {
	var keys []string
	err := d.List(ctx, "tables/"+table+"/", func(key string) error {
		if strings.HasSuffix(key, ".parquet") {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	paths := []string{}
	for _, k := range Visible(keys) {
		paths = append(paths, d.Path(k))
	}
	return paths, nil
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// conform returns rec with target's types: a binary column read back from a
// JSON column becomes the JSON type again (the same bytes); any other
// difference means the file was written with another schema, and ok is
// false. The result is a new reference; the caller still releases rec.
func conform(rec arrow.RecordBatch, target *arrow.Schema) (arrow.RecordBatch, bool) {
	if target == nil || rec.Schema().Equal(target) {
		rec.Retain()
		return rec, true
	}
	if rec.NumCols() != int64(target.NumFields()) {
		return nil, false
	}
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, col := range rec.Columns() {
		want := target.Field(i)
		if rec.Schema().Field(i).Name != want.Name {
			return nil, false
		}
		switch {
		case arrow.TypeEqual(col.DataType(), want.Type):
			col.Retain()
			cols[i] = col
		case isJSONOverBinary(col.DataType(), want.Type):
			d := col.Data()
			sd := array.NewData(arrow.BinaryTypes.String, d.Len(), d.Buffers(), nil, d.NullN(), d.Offset())
			storage := array.NewStringData(sd)
			cols[i] = array.NewExtensionArrayWithStorage(want.Type.(arrow.ExtensionType), storage)
			storage.Release()
			sd.Release()
		default:
			return nil, false
		}
	}
	return array.NewRecordBatch(target, cols, rec.NumRows()), true
}

func isJSONOverBinary(got, want arrow.DataType) bool {
	ext, ok := want.(arrow.ExtensionType)
	return ok && got.ID() == arrow.BINARY && ext.StorageType().ID() == arrow.STRING
}

func rowGroupRows(n int64) int64 {
	if n <= 0 {
		return RowGroupRows
	}
	return n
}
