package sink

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// Manifest is the committed file list of one stream partition's output in a
// table: the only way a file becomes part of the table. It lives in the
// partition's progress object and changes only with the owner's conditional
// progress writes (a flush adds files, a compaction swaps files), so a file
// no manifest lists (a zombie's late upload, a crash leftover) is never
// visible, whatever the directory holds.
//
// Size: Files holds the newest entries (at most HeadFiles); older entries
// are sealed, HeadFiles/2 at a time, into immutable segment objects that
// Segments names. A progress object therefore stays under about
// HeadFiles × 300 bytes plus 150 bytes per segment, however big the table
// grows; with compaction a partition has about one file per Hive directory,
// so a table partitioned by hour seals a segment every few weeks.
type Manifest struct {
	Table    string      `json:"table"`
	Files    []FileEntry `json:"files"`
	Segments []Segment   `json:"segments,omitempty"`
	// Retired are files a compaction replaced; queries that started before
	// may still read them, so they are deleted after a grace period.
	Retired []Retired `json:"retired,omitempty"`
}

// FileEntry describes one committed table file.
type FileEntry struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	Rows int64  `json:"rows"`
	// First and Last are the offset range of the stream partition the file
	// was made from (its rows come from records within it).
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	// Part holds the Hive partition values as they appear in the path
	// (escaped; schemas.DefaultPartition for null).
	Part map[string]string `json:"part,omitempty"`
	// MinTime and MaxTime bound the table's time column in the file (nil:
	// unknown, or no time column).
	MinTime *time.Time `json:"min_time,omitempty"`
	MaxTime *time.Time `json:"max_time,omitempty"`
	// Schema fingerprints the Arrow schema the file was written with
	// ("": unknown, a file adopted from an older release).
	Schema string `json:"schema,omitempty"`
}

// Segment is an immutable object holding sealed manifest entries, oldest
// first, summarized so a reader can skip it.
type Segment struct {
	Key     string     `json:"key"`
	Files   int        `json:"files"`
	Rows    int64      `json:"rows"`
	Bytes   int64      `json:"bytes"`
	First   int64      `json:"first"`
	Last    int64      `json:"last"`
	MinTime *time.Time `json:"min_time,omitempty"`
	MaxTime *time.Time `json:"max_time,omitempty"`
}

// Retired is a file a compaction took out of the manifest, and when.
type Retired struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// HeadFiles bounds the entries a progress object holds itself.
const HeadFiles = 1000

func (m *Manifest) clone() *Manifest {
	if m == nil {
		return nil
	}
	c := *m
	c.Files = slices.Clone(m.Files)
	c.Segments = slices.Clone(m.Segments)
	c.Retired = slices.Clone(m.Retired)
	return &c
}

// add appends entries (a flush's files).
func (m *Manifest) add(entries []FileEntry) {
	m.Files = append(m.Files, entries...)
}

// replace swaps the files named remove for entries (a compaction), and
// retires the removed ones as of now.
func (m *Manifest) replace(remove []string, entries []FileEntry, now time.Time) {
	m.Files = slices.DeleteFunc(m.Files, func(f FileEntry) bool { return slices.Contains(remove, f.Key) })
	m.Files = append(m.Files, entries...)
	slices.SortFunc(m.Files, func(a, b FileEntry) int { return cmp.Compare(a.First, b.First) })
	for _, k := range remove {
		m.Retired = append(m.Retired, Retired{Key: k, At: now})
	}
}

// has reports whether key is a file, or a retired file, of the manifest's
// head.
func (m *Manifest) has(key string) bool {
	return slices.ContainsFunc(m.Files, func(f FileEntry) bool { return f.Key == key }) ||
		slices.ContainsFunc(m.Retired, func(r Retired) bool { return r.Key == key })
}

// segmentKey names a sealed segment: by the writer's epoch and the offsets it
// covers, so that a zombie's segment never overwrites its successor's.
func segmentKey(pipeline, stream string, partition int32, epoch int64, first, last int64) string {
	return fmt.Sprintf("_sluice/manifests/%s/%s/%d/%d-%d-%d.json", pipeline, stream, partition, epoch, first, last)
}

// seal moves the oldest HeadFiles/2 entries into a new segment once the head
// holds more than HeadFiles; it returns the segment's object (nil: none).
func (m *Manifest) seal(key func(first, last int64) string) (string, []byte, error) {
	if len(m.Files) <= HeadFiles {
		return "", nil, nil
	}
	old := m.Files[:HeadFiles/2]
	seg := Segment{First: old[0].First, Last: old[len(old)-1].Last, Files: len(old)}
	for _, f := range old {
		seg.Rows += f.Rows
		seg.Bytes += f.Size
	}
	seg.MinTime, seg.MaxTime = spanOf(old)
	seg.Key = key(seg.First, seg.Last)
	data, err := json.Marshal(old)
	if err != nil {
		return "", nil, err
	}
	m.Segments = append(m.Segments, seg)
	m.Files = slices.Clone(m.Files[HeadFiles/2:])
	return seg.Key, data, nil
}

// spanOf is the time span of entries; nil bounds if any entry's is unknown.
func spanOf(entries []FileEntry) (lo, hi *time.Time) {
	for i, f := range entries {
		if f.MinTime == nil || f.MaxTime == nil {
			return nil, nil
		}
		if i == 0 || f.MinTime.Before(*lo) {
			lo = f.MinTime
		}
		if i == 0 || f.MaxTime.After(*hi) {
			hi = f.MaxTime
		}
	}
	return lo, hi
}

// AllFiles returns every committed file of the manifest: its segments'
// (read through get, which may cache: segments are immutable) and its head's.
func (m *Manifest) AllFiles(ctx context.Context, get func(ctx context.Context, key string) ([]byte, error)) ([]FileEntry, error) {
	var out []FileEntry
	for _, s := range m.Segments {
		data, err := get(ctx, s.Key)
		if err != nil {
			return nil, fmt.Errorf("cannot read manifest segment %q: %w", s.Key, err)
		}
		var entries []FileEntry
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, fmt.Errorf("cannot decode manifest segment %q: %w", s.Key, err)
		}
		out = append(out, entries...)
	}
	return append(out, m.Files...), nil
}

// schemaFingerprint identifies an Arrow schema, so a reader can tell
// whether a table's files share one (and needs no union by name).
func schemaFingerprint(s *arrow.Schema) string {
	sum := sha256.Sum256([]byte(s.String()))
	return hex.EncodeToString(sum[:8])
}

// hivePart parses the Hive directories of a table file's key
// (tables/<t>/a=1/b=2/name.parquet) into their values, as written.
func hivePart(key string) map[string]string {
	dir := path.Dir(key)
	segs := strings.Split(dir, "/")
	if len(segs) < 2 {
		return nil
	}
	var out map[string]string
	for _, s := range segs[2:] {
		if k, v, ok := strings.Cut(s, "="); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// entryFor describes a file about to be written from rec.
func entryFor(key string, data []byte, rec arrow.RecordBatch, first, last int64, timeCol, fingerprint string) FileEntry {
	e := FileEntry{Key: key, Size: int64(len(data)), Rows: rec.NumRows(), First: first, Last: last, Part: hivePart(key), Schema: fingerprint}
	e.MinTime, e.MaxTime = timeSpan(rec, timeCol)
	return e
}

// timeSpan is the min and max of rec's timestamp column col (nil if absent,
// not a timestamp, or all null).
func timeSpan(rec arrow.RecordBatch, col string) (*time.Time, *time.Time) {
	idx := rec.Schema().FieldIndices(col)
	if col == "" || len(idx) == 0 {
		return nil, nil
	}
	ts, ok := rec.Column(idx[0]).(*array.Timestamp)
	if !ok {
		return nil, nil
	}
	unit := ts.DataType().(*arrow.TimestampType).Unit
	var lo, hi arrow.Timestamp
	seen := false
	for i := range ts.Len() {
		if ts.IsNull(i) {
			continue
		}
		v := ts.Value(i)
		if !seen || v < lo {
			lo = v
		}
		if !seen || v > hi {
			hi = v
		}
		seen = true
	}
	if !seen {
		return nil, nil
	}
	a, b := lo.ToTime(unit).UTC(), hi.ToTime(unit).UTC()
	return &a, &b
}

// adopt builds the manifest of a partition written by a release before
// manifests: the files of this stream partition that a query saw then and
// that lie below next (legacyFiles). It lists the table once, at the claim
// that upgrades the progress object; from then on the manifest is the truth.
func adopt(ctx context.Context, b objstore.Bucket, table, stream string, partition int32, next int64) (*Manifest, error) {
	refs, err := legacyFiles(ctx, b, table, stream, partition, next)
	if err != nil {
		return nil, fmt.Errorf("cannot adopt the files of %s/%d: %w", stream, partition, err)
	}
	m := &Manifest{Table: table, Files: []FileEntry{}}
	for _, f := range refs {
		e, err := describeFile(ctx, b, f.key, f)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, e)
	}
	slices.SortFunc(m.Files, func(a, b FileEntry) int { return cmp.Compare(a.First, b.First) })
	return m, nil
}

// legacyFiles lists the files of one stream partition of a table written
// before manifests that a query read then (Visible) and that lie below
// next (a file at or past it is of a flush that never completed).
func legacyFiles(ctx context.Context, b objstore.Bucket, table, stream string, partition int32, next int64) ([]fileRef, error) {
	var keys []string
	err := b.List(ctx, "tables/"+table+"/", func(key string) error {
		if f, ok := parseFileKey(key); ok && f.stream == stream && f.partition == partition {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list table %q: %w", table, err)
	}
	var out []fileRef
	for _, k := range Visible(keys) {
		if f, _ := parseFileKey(k); f.last < next {
			out = append(out, f)
		}
	}
	return out, nil
}

// describeFile reads a file's Parquet footer for its entry (rows; the time
// span and schema stay unknown).
func describeFile(ctx context.Context, b objstore.Bucket, key string, f fileRef) (FileEntry, error) {
	data, err := b.Get(ctx, key)
	if err != nil {
		return FileEntry{}, fmt.Errorf("cannot read table file %q to adopt it: %w", key, err)
	}
	e := FileEntry{Key: key, Size: int64(len(data)), First: f.first, Last: f.last, Part: hivePart(key)}
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return e, nil // unreadable: listed with unknown rows; the query reports it
	}
	e.Rows = pf.NumRows()
	pf.Close()
	return e, nil
}
