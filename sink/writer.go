package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/failpoint"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/schemas"
)

// Config describes where one stream partition's rows go.
type Config struct {
	Bucket    objstore.Bucket
	Pipeline  string
	Stream    string
	Partition int32
	Table     string
	Schema    *schemas.Schema
	// FileBytes, FileAge and FileIdle trigger a flush (see Writer.Due).
	FileBytes int64
	FileAge   time.Duration
	FileIdle  time.Duration // 0: no idleness trigger
	// RowGroupRows caps Parquet row groups (0: RowGroupRows).
	RowGroupRows int64
	// Budget, if set, is shared by all writers of the process and forces
	// early flushes when their buffers together pass its limit; compaction
	// counts the files it merges against it too.
	Budget *Budget
	// CompactInterval is how often the owner merges its small files (0:
	// never); files at least CompactTarget big (0: 64 MiB) are left alone.
	CompactInterval time.Duration
	CompactTarget   int64
	// RetireGrace is how long a file a compaction replaced is kept for the
	// queries that listed it before (0: DefaultRetireGrace). It must exceed
	// the longest query.
	RetireGrace time.Duration
}

// Writer buffers one stream partition's rows and writes them as Parquet
// files, one per Hive partition (dt=, hour=) that the buffered rows fall in.
//
// Contract: the caller adds batches in strictly increasing offset order, and
// calls Flush; Flush returns the offset up to which everything added is
// durable in the table. The caller commits that offset to Kafka only after
// Flush returns it (commit-after-durable). A Writer is used by one goroutine.
type Writer struct {
	cfg         Config
	progressKey string
	builders    map[string]*schemas.Builder // by Hive partition path
	first, last int64                       // offset range added since the last flush; first < 0: none
	bytes       int64
	since       time.Time // when the oldest unflushed batch was added
	lastAdd     time.Time // when the newest batch was added
	next        int64     // everything below is durable in the table; -1: unknown
	epoch       int64     // this writer's claim on the partition (fencing)
	version     string    // of the progress object as this writer last wrote it
	manifest    *Manifest // the committed files, as of version
	fingerprint string    // of the table's Arrow schema
	state       []byte    // the caller's state as of next (see SetState)
	nextState   []byte    // the caller's state as of last, for the next flush
	status      []byte    // the caller's status, written with every progress write
	compacted   time.Time // when the last compaction pass ran

	// A flush seals the builders into records, then encodes them into files;
	// both stay until the flush succeeds, so a failed flush (encoding or
	// upload) can be retried without losing or repeating rows.
	sealed      map[string]arrow.RecordBatch
	sealedState []byte // nextState when the flush sealed its rows
	encoded     map[string][]byte
	entries     []FileEntry // of the encoded files, by key
	pending     *Pending    // this flush's pending record, once it is in the store
	pendingNext int64       // the Next written with it
	flushed     FlushStats  // what the last successful Flush wrote
}

// FlushStats is what one Flush wrote: table files and their bytes.
type FlushStats struct {
	Files int
	Bytes int64
}

// LastFlush is what the last successful Flush wrote (for metrics).
func (w *Writer) LastFlush() FlushStats { return w.flushed }

// Open recovers the partition's progress (finishing or undoing a change a
// crash interrupted, adopting the files of an older release) and returns a
// writer and the offset to resume reading from, or -1 if this pipeline has
// never written this partition.
func Open(ctx context.Context, cfg Config) (*Writer, int64, error) {
	key := progressKey(cfg.Pipeline, cfg.Stream, cfg.Partition)
	p, version, err := claimProgress(ctx, cfg.Bucket, key, cfg)
	if err != nil {
		return nil, -1, err
	}
	w := &Writer{cfg: cfg, progressKey: key, builders: map[string]*schemas.Builder{}, first: -1, last: -1,
		next: p.Next, epoch: p.Epoch, version: version, manifest: p.Manifest, state: p.State, nextState: p.State,
		fingerprint: schemaFingerprint(cfg.Schema.ArrowSchema()), compacted: time.Now()}
	return w, p.Next, nil
}

// Manifest returns the partition's committed files as this writer last
// wrote them (the caller must not modify it).
func (w *Writer) Manifest() *Manifest { return w.manifest }

// State returns the state the caller recorded with the offset Open resumed
// from (nil if it never set one).
func (w *Writer) State() []byte { return w.state }

// SetState sets the caller's state after the batches added so far (JSON,
// nil for none). Flush records it in the progress object together with the
// offsets it makes durable, so after a crash Open returns, with the offset
// to resume from, exactly the state the caller had after the record before
// it. A processor whose output depends on what it saw before (the
// dead-letter deduplication) keeps its state here, where it is as
// crash-safe as the rows. A Flush uses the state set before its first
// attempt; the caller sets it before every Flush.
func (w *Writer) SetState(state []byte) { w.nextState = state }

// Add buffers the rows converted from the records at offsets first..last
// (rows may be fewer or more than records; a batch whose records produced no
// rows still moves the partition's progress past them at the next flush).
// bytes is the size of the input, which drives size-based rotation.
func (w *Writer) Add(rows []schemas.Row, first, last int64, bytes int) error {
	if first > last || (w.first >= 0 && first <= w.last) || first < w.next {
		return fmt.Errorf("BUG: batch %d..%d of %s/%d added out of order (buffered up to %d, durable below %d)", first, last, w.cfg.Stream, w.cfg.Partition, w.last, w.next)
	}
	if w.sealed != nil {
		return fmt.Errorf("BUG: batch %d..%d of %s/%d added before a failed flush was retried", first, last, w.cfg.Stream, w.cfg.Partition)
	}
	if w.first < 0 {
		w.first, w.since = first, time.Now()
	}
	w.last, w.lastAdd = last, time.Now()
	w.bytes += int64(bytes)
	w.cfg.Budget.add(int64(bytes))
	for _, r := range rows {
		part := w.cfg.Schema.PartitionPath(r)
		b := w.builders[part]
		if b == nil {
			b = w.cfg.Schema.NewBuilder(memory.DefaultAllocator)
			w.builders[part] = b
		}
		b.Append(r)
	}
	return nil
}

// Buffered reports whether anything awaits a flush.
func (w *Writer) Buffered() bool { return w.first >= 0 }

// Due reports whether the buffered rows should be written now: they reached
// FileBytes, the oldest has waited FileAge, no batch came for FileIdle, or
// the shared memory budget is spent. The caller asks on a clock tick too,
// so an idle partition still flushes.
func (w *Writer) Due(now time.Time) bool {
	if w.first < 0 {
		return false
	}
	idle := w.cfg.FileIdle > 0 && now.Sub(w.lastAdd) >= w.cfg.FileIdle
	return idle || w.bytes >= w.cfg.FileBytes || now.Sub(w.since) >= w.cfg.FileAge || w.cfg.Budget.over()
}

// fileKey names a file by its table, Hive partition, stream, partition,
// offset range and the writer's epoch: a retried upload of the same flush
// replaces rather than duplicates, and no other writer (a zombie of an older
// epoch) can ever write over a file of this one.
func (w *Writer) fileKey(part string, first, last int64) string {
	return fmt.Sprintf("tables/%s/%s/%s-%d-%d-%d-%d.parquet", w.cfg.Table, part, w.cfg.Stream, w.cfg.Partition, first, last, w.epoch)
}

// Flush writes the buffered rows and returns the next offset to read (all
// offsets below it are durable in the table). With nothing buffered it
// returns -1 and writes nothing.
//
// Protocol (see DESIGN.md, "Effectively-once output"): encode every file;
// record them as pending in the progress object; upload them; record the new
// Next with the files added to the manifest, in one conditional write: that
// write is what makes the files part of the table. A crash at any point is
// repaired by Open (claimProgress). On error the encoded files are kept and
// the caller retries Flush (and adds nothing before it succeeds).
func (w *Writer) Flush(ctx context.Context) (int64, error) {
	if w.first < 0 {
		return -1, nil
	}
	if w.sealed == nil {
		w.seal()
		w.sealedState = w.nextState
	}
	if w.encoded == nil {
		if err := w.encode(); err != nil {
			return -1, err
		}
	}
	keys := slices.Sorted(maps.Keys(w.encoded))
	next := w.last + 1
	where := fmt.Sprintf("offsets %d..%d of %s/%d to table %q", w.first, w.last, w.cfg.Stream, w.cfg.Partition, w.cfg.Table)
	if len(keys) > 0 {
		// Rolling back resumes at the durable offset (or, on a partition
		// never written, at the first offset of this flush).
		rollback := w.first
		if w.next >= 0 {
			rollback = w.next
		}
		// A retry after a failed final write must not write pending again:
		// the first attempt's final write may have landed after all.
		if w.pending == nil {
			pending := w.progress(rollback, w.state, w.manifest)
			pending.Pending = &Pending{Next: next, Files: keys, Entries: w.entries, State: w.sealedState}
			if err := w.save(ctx, pending); err != nil {
				return -1, fmt.Errorf("cannot write %s: %w", where, err)
			}
			w.pending, w.pendingNext = pending.Pending, rollback
		}
		failpoint.Hit("sink.after-pending")
		for _, k := range keys {
			if err := w.cfg.Bucket.Put(ctx, k, w.encoded[k]); err != nil {
				return -1, fmt.Errorf("cannot write %s: %w", where, err)
			}
			failpoint.Hit("sink.after-file")
		}
	}
	m := w.manifest.clone()
	m.add(w.entries)
	if err := w.sealSegment(ctx, m); err != nil {
		return -1, fmt.Errorf("cannot write %s: %w", where, err)
	}
	final := w.progress(next, w.sealedState, m)
	final.Pending = nil
	if err := w.save(ctx, final); err != nil {
		return -1, fmt.Errorf("cannot write %s: %w", where, err)
	}
	failpoint.Hit("sink.after-progress")
	w.flushed = FlushStats{Files: len(keys)}
	for _, data := range w.encoded {
		w.flushed.Bytes += int64(len(data))
	}
	w.release()
	w.cfg.Budget.add(-w.bytes)
	w.first, w.last, w.bytes, w.next, w.state, w.pending, w.manifest = -1, -1, 0, next, w.sealedState, nil, m
	return next, nil
}

// progress is the progress object at next with state and manifest m, and
// the pending flush, if one is in the store (its record must stay until
// the flush ends: it is what protects its files from garbage collection).
func (w *Writer) progress(next int64, state []byte, m *Manifest) Progress {
	return Progress{Next: next, Epoch: w.epoch, State: state, Manifest: m, Status: w.status, Pending: w.pending}
}

// sealSegment moves the oldest entries of m into a segment object once its
// head is full (see Manifest). The segment is written before the progress
// that names it; a retry writes the same segment again.
func (w *Writer) sealSegment(ctx context.Context, m *Manifest) error {
	key, data, err := m.seal(func(first, last int64) string {
		return segmentKey(w.cfg.Pipeline, w.cfg.Stream, w.cfg.Partition, w.epoch, first, last)
	})
	if err != nil || key == "" {
		return err
	}
	return w.cfg.Bucket.Put(ctx, key, data)
}

// SetStatus sets the caller's status (JSON), written with every progress
// write from now on.
func (w *Writer) SetStatus(status []byte) { w.status = status }

// SaveStatus writes the progress object again, unchanged but for the
// status, so other processes see it (say, that the partition is retrying).
// ErrFenced means another writer owns the partition now.
func (w *Writer) SaveStatus(ctx context.Context, status []byte) error {
	w.status = status
	next := w.next
	if w.pending != nil {
		next = w.pendingNext
	}
	return w.save(ctx, w.progress(next, w.state, w.manifest))
}

// save writes p conditionally on the version this writer last wrote. A
// conflict means another writer claimed the partition (ErrFenced), unless
// the object already holds p: an earlier attempt whose answer was lost did
// land, and the retry is a success.
func (w *Writer) save(ctx context.Context, p Progress) error {
	v, err := saveProgress(ctx, w.cfg.Bucket, w.progressKey, p, w.version)
	if errors.Is(err, ErrFenced) {
		cur, curV, lerr := loadProgress(ctx, w.cfg.Bucket, w.progressKey)
		if lerr == nil && cur != nil && samePosition(*cur, p) {
			w.version = curV
			return nil
		}
	}
	if err != nil {
		return err
	}
	w.version = v
	return nil
}

func samePosition(a, b Progress) bool {
	if a.Next != b.Next || a.Epoch != b.Epoch || (a.Pending == nil) != (b.Pending == nil) || !sameFiles(a.Manifest, b.Manifest) {
		return false
	}
	return a.Pending == nil || (a.Pending.Next == b.Pending.Next && slices.Equal(a.Pending.Files, b.Pending.Files))
}

func sameFiles(a, b *Manifest) bool {
	if a == nil || b == nil {
		return a == b
	}
	key := func(f FileEntry) string { return f.Key }
	return slices.Equal(mapSlice(a.Files, key), mapSlice(b.Files, key)) && len(a.Segments) == len(b.Segments) && len(a.Retired) == len(b.Retired)
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// seal turns every Hive partition's buffered rows into an Arrow record and
// empties the builders.
func (w *Writer) seal() {
	w.sealed = map[string]arrow.RecordBatch{}
	for part, b := range w.builders {
		if b.Len() > 0 {
			w.sealed[part] = b.NewRecord()
		}
		b.Release()
		delete(w.builders, part)
	}
}

// encode turns the sealed records into Parquet files; on error nothing
// changes, so a retry encodes again.
func (w *Writer) encode() error {
	files := map[string][]byte{}
	var entries []FileEntry
	for part, rec := range w.sealed {
		data, err := encodeParquet(rec, w.cfg.RowGroupRows)
		if err != nil {
			return fmt.Errorf("cannot encode offsets %d..%d of %s/%d for table %q: %w", w.first, w.last, w.cfg.Stream, w.cfg.Partition, w.cfg.Table, err)
		}
		key := w.fileKey(part, w.first, w.last)
		files[key] = data
		entries = append(entries, entryFor(key, data, rec, w.first, w.last, w.cfg.Schema.TimeColumn, w.fingerprint))
	}
	slices.SortFunc(entries, func(a, b FileEntry) int { return strings.Compare(a.Key, b.Key) })
	w.encoded, w.entries = files, entries
	return nil
}

func (w *Writer) release() {
	for _, rec := range w.sealed {
		rec.Release()
	}
	w.sealed, w.encoded, w.entries = nil, nil, nil
}

// Close releases the buffers; unflushed rows are dropped (they were never
// committed, so they are read again by whoever resumes the partition).
func (w *Writer) Close() {
	for _, b := range w.builders {
		b.Release()
	}
	w.builders = map[string]*schemas.Builder{}
	w.release()
	w.cfg.Budget.add(-w.bytes)
	w.bytes = 0
}
