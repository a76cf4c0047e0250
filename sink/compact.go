package sink

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/failpoint"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// fileRef is a table file named by the sink:
// tables/<table>/<hive dirs>/<stream>-<partition>-<first>-<last>-<epoch>.parquet
// (releases before manifests wrote no epoch).
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
	// Stream names have no '-', so the other fields are numbers.
	parts := strings.Split(base, "-")
	if len(parts) != 4 && len(parts) != 5 {
		return fileRef{}, false
	}
	f := fileRef{key: key, dir: strings.TrimSuffix(dir, "/"), stream: parts[0]}
	var epoch int64
	if _, err := fmt.Sscanf(parts[1]+" "+parts[2]+" "+parts[3], "%d %d %d", &f.partition, &f.first, &f.last); err != nil || f.first > f.last {
		return fileRef{}, false
	}
	if len(parts) == 5 {
		if _, err := fmt.Sscanf(parts[4], "%d", &epoch); err != nil {
			return fileRef{}, false
		}
	}
	return f, true
}

// Visible filters the Parquet keys of a table written before manifests down
// to the ones a query read then: a file whose offset range lies within
// another file of the same directory, stream and partition had been merged
// into it by compaction. Only the one-time adoption of such a table's files
// (and of its partitions not adopted yet) uses it; a table with manifests is
// what they list. Keys not named by the sink are kept as they are.
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

// DefaultRetireGrace is how long a file a compaction replaced is kept by
// default: longer than the longest query (--query-timeout, 1 min by default).
const DefaultRetireGrace = 10 * time.Minute

// CompactDue reports whether a compaction pass is due (Config.CompactInterval).
func (w *Writer) CompactDue(now time.Time) bool {
	return w.cfg.CompactInterval > 0 && now.Sub(w.compacted) >= w.cfg.CompactInterval && w.sealed == nil
}

// Compact is one compaction pass over the partition's own committed files:
// within each Hive directory, each run of consecutive files smaller than
// CompactTarget is merged into one file, and the manifest swaps the run for
// it in one conditional write; the run's files are retired and deleted
// RetireGrace later (queries that listed them may still be reading). Only
// the owner compacts its partition, from the goroutine that flushes it, so
// compactions never overlap each other or a flush.
//
// A merge follows the flush's protocol (pending, upload, commit), so a crash
// leaves either the old files or the merged one in the manifest, never both.
// The files being merged count against the memory budget. It returns how
// many files were merged away; an error leaves the manifest as it was
// (ErrFenced: another writer owns the partition).
func (w *Writer) Compact(ctx context.Context) (int, error) {
	w.compacted = time.Now()
	if w.sealed != nil || w.pending != nil {
		return 0, nil
	}
	if err := w.dropRetired(ctx); err != nil {
		return 0, err
	}
	merged := 0
	for _, run := range w.runs() {
		n, err := w.merge(ctx, run)
		merged += n
		if err != nil {
			return merged, err
		}
	}
	return merged, nil
}

func (w *Writer) target() int64 {
	if w.cfg.CompactTarget <= 0 {
		return 64 << 20
	}
	return w.cfg.CompactTarget
}

func (w *Writer) grace() time.Duration {
	if w.cfg.RetireGrace <= 0 {
		return DefaultRetireGrace
	}
	return w.cfg.RetireGrace
}

// runs are the merge candidates: per Hive directory, runs of at least two
// consecutive small files of the table's current schema (or of unknown
// schema: the merge checks), together at most a target's worth (which also
// bounds the merge's memory).
func (w *Writer) runs() [][]FileEntry {
	byDir := map[string][]FileEntry{}
	for _, f := range w.manifest.Files {
		byDir[path.Dir(f.Key)] = append(byDir[path.Dir(f.Key)], f)
	}
	var runs [][]FileEntry
	for _, dir := range slices.Sorted(maps.Keys(byDir)) {
		fs := byDir[dir]
		slices.SortFunc(fs, func(a, b FileEntry) int { return cmp.Compare(a.First, b.First) })
		var run []FileEntry
		var bytes int64
		for _, f := range fs {
			small := f.Size < w.target() && (f.Schema == "" || f.Schema == w.fingerprint)
			if small && bytes+f.Size <= w.target() {
				run, bytes = append(run, f), bytes+f.Size
				continue
			}
			if len(run) >= 2 {
				runs = append(runs, run)
			}
			run, bytes = nil, 0
			if small {
				run, bytes = []FileEntry{f}, f.Size
			}
		}
		if len(run) >= 2 {
			runs = append(runs, run)
		}
	}
	return runs
}

// merge rewrites run as one file and swaps it into the manifest. A run
// whose files turn out to have another schema (the table evolved) is left
// alone.
func (w *Writer) merge(ctx context.Context, run []FileEntry) (int, error) {
	var runBytes int64
	for _, f := range run {
		runBytes += f.Size
	}
	w.cfg.Budget.add(runBytes)
	defer w.cfg.Budget.add(-runBytes)
	first, last := run[0], run[len(run)-1]
	key := w.fileKey(strings.TrimPrefix(path.Dir(first.Key), "tables/"+w.cfg.Table+"/"), first.First, last.Last)
	if w.manifest.has(key) {
		return 0, nil // merged before, in this epoch: nothing new to gain
	}
	data, rows, err := w.mergeFiles(ctx, run)
	if err != nil || data == nil {
		return 0, err
	}
	entry := FileEntry{Key: key, Size: int64(len(data)), Rows: rows, First: first.First, Last: last.Last,
		Part: hivePart(key), Schema: w.fingerprint}
	entry.MinTime, entry.MaxTime = spanOf(run)
	keys := mapSlice(run, func(f FileEntry) string { return f.Key })
	pending := w.progress(w.next, w.state, w.manifest)
	pending.Pending = &Pending{Next: w.next, Files: []string{key}, Entries: []FileEntry{entry}, Replaces: keys, State: w.state}
	if err := w.save(ctx, pending); err != nil {
		return 0, fmt.Errorf("cannot compact files of %s/%d in table %q: %w", w.cfg.Stream, w.cfg.Partition, w.cfg.Table, err)
	}
	failpoint.Hit("sink.compact-after-pending")
	if err := w.cfg.Bucket.Put(ctx, key, data); err != nil {
		return 0, fmt.Errorf("cannot write merged file %q: %w", key, err)
	}
	m := w.manifest.clone()
	m.replace(keys, []FileEntry{entry}, time.Now().UTC())
	if err := w.save(ctx, w.progress(w.next, w.state, m)); err != nil { // w.pending is nil: no flush is under way
		return 0, fmt.Errorf("cannot compact files of %s/%d in table %q: %w", w.cfg.Stream, w.cfg.Partition, w.cfg.Table, err)
	}
	w.manifest = m
	return len(run), nil
}

// dropRetired deletes the retired files older than the grace period, then
// takes them out of the manifest (a crash in between deletes them again).
func (w *Writer) dropRetired(ctx context.Context) error {
	now := time.Now()
	var keep []Retired
	dropped := false
	for _, r := range w.manifest.Retired {
		if now.Sub(r.At) < w.grace() {
			keep = append(keep, r)
			continue
		}
		if err := w.cfg.Bucket.Delete(ctx, r.Key); err != nil {
			return fmt.Errorf("cannot delete retired file %q: %w", r.Key, err)
		}
		dropped = true
	}
	if !dropped {
		return nil
	}
	m := w.manifest.clone()
	m.Retired = keep
	if err := w.save(ctx, w.progress(w.next, w.state, m)); err != nil {
		return fmt.Errorf("cannot drop retired files of %s/%d in table %q: %w", w.cfg.Stream, w.cfg.Partition, w.cfg.Table, err)
	}
	w.manifest = m
	return nil
}

// mergeFiles streams run's files, one record batch at a time, into one
// Parquet file with the table's Arrow schema (Parquet readers return JSON
// columns as plain binary; without it JSON would turn into BLOB). What it
// holds at once is one input file's bytes, one batch, the row group being
// written and the output so far: not the run's rows, which zstd may have
// compressed twenty-fold (reading whole runs held gigabytes). nil data: a
// file of another schema, nothing to merge.
func (w *Writer) mergeFiles(ctx context.Context, run []FileEntry) ([]byte, int64, error) {
	target := w.cfg.Schema.ArrowSchema()
	var buf bytes.Buffer
	var pw *pqarrow.FileWriter
	defer func() {
		if pw != nil {
			pw.Close()
		}
	}()
	var rows int64
	for _, f := range run {
		ok, err := eachBatch(ctx, w.cfg.Bucket, f.Key, func(rec arrow.RecordBatch) (bool, error) {
			conformed, ok := conform(rec, target)
			if !ok { // a file of an older schema: leave the run alone
				return false, nil
			}
			defer conformed.Release()
			if pw == nil {
				var err error
				if pw, err = pqarrow.NewFileWriter(conformed.Schema(), &buf, propsFor(rowGroupRows(w.cfg.RowGroupRows)), pqarrow.DefaultWriterProps()); err != nil {
					return false, fmt.Errorf("cannot create Parquet writer: %w", err)
				}
			}
			if err := pw.WriteBuffered(conformed); err != nil {
				return false, fmt.Errorf("cannot encode merged file of table %q: %w", w.cfg.Table, err)
			}
			rows += conformed.NumRows()
			return true, nil
		})
		if err != nil || !ok {
			return nil, 0, err
		}
	}
	if pw == nil {
		return nil, 0, nil
	}
	err := pw.Close()
	pw = nil
	if err != nil {
		return nil, 0, fmt.Errorf("cannot finish merged file of table %q: %w", w.cfg.Table, err)
	}
	return buf.Bytes(), rows, nil
}

// mergeBatchRows is how many rows a merge reads at a time.
const mergeBatchRows = 16 << 10

// mergeAlloc allocates what merges read (a test measures it).
var mergeAlloc memory.Allocator = memory.DefaultAllocator

// eachBatch calls fn with each record batch of one Parquet object, in
// order, until fn returns false (ok false) or an error. The batch is only
// valid during the call.
func eachBatch(ctx context.Context, b objstore.Bucket, key string, fn func(arrow.RecordBatch) (bool, error)) (ok bool, err error) {
	data, err := b.Get(ctx, key)
	if err != nil {
		return false, err
	}
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return false, fmt.Errorf("cannot read %q: %w", key, err)
	}
	defer pf.Close()
	r, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: mergeBatchRows}, mergeAlloc)
	if err != nil {
		return false, fmt.Errorf("cannot read %q: %w", key, err)
	}
	rr, err := r.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return false, fmt.Errorf("cannot read %q: %w", key, err)
	}
	defer rr.Release()
	for rr.Next() {
		if ok, err := fn(rr.RecordBatch()); err != nil || !ok {
			return false, err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("cannot read %q: %w", key, err)
	}
	return true, nil
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
