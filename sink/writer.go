package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	// early flushes when their buffers together pass its limit.
	Budget *Budget
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
	replay      int64     // the last offset of a rolled-back flush to repeat (Progress.Replay); -1: none
	replayFirst int64     // its first offset; -1: unknown
	state       []byte    // the caller's state as of next (see SetState)
	nextState   []byte    // the caller's state as of last, for the next flush

	// A flush seals the builders into records, then encodes them into files;
	// both stay until the flush succeeds, so a failed flush (encoding or
	// upload) can be retried without losing or repeating rows.
	sealed         map[string]arrow.RecordBatch
	sealedState    []byte // nextState when the flush sealed its rows
	encoded        map[string][]byte
	pendingWritten bool // this flush's pending record is in the store
}

// Open recovers the partition's progress (finishing or undoing a flush a
// crash interrupted) and returns a writer and the offset to resume reading
// from, or -1 if this pipeline has never written this partition.
func Open(ctx context.Context, cfg Config) (*Writer, int64, error) {
	key := progressKey(cfg.Pipeline, cfg.Stream, cfg.Partition)
	p, version, err := claimProgress(ctx, cfg.Bucket, key)
	if err != nil {
		return nil, -1, err
	}
	w := &Writer{cfg: cfg, progressKey: key, builders: map[string]*schemas.Builder{}, first: -1, last: -1,
		next: p.Next, epoch: p.Epoch, version: version, state: p.State, nextState: p.State, replay: -1, replayFirst: -1}
	if p.Replay != nil {
		w.replay, w.replayFirst = p.Replay.Last, p.Replay.First
	}
	return w, p.Next, nil
}

// ReplayFirst returns the first offset of the rolled-back flush to repeat,
// or -1 (none, or unknown). The caller drops the repeat (DropReplay) if the
// first record it reads is another one: the log lost records before it.
func (w *Writer) ReplayFirst() int64 {
	if w.replay < 0 {
		return -1
	}
	return w.replayFirst
}

// ReplayLast returns the last offset of a rolled-back flush that the next
// flush must repeat exactly (Progress.Replay), or -1. The caller adds
// batches that end at it, not beyond: Due turns true when the rows reach it,
// and not before.
func (w *Writer) ReplayLast() int64 { return w.replay }

// DropReplay gives up repeating the rolled-back flush, because its records
// are gone from the log (retention); the usual flush rules apply again.
func (w *Writer) DropReplay() { w.replay = -1 }

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
	if w.replay >= 0 {
		return w.last >= w.replay
	}
	idle := w.cfg.FileIdle > 0 && now.Sub(w.lastAdd) >= w.cfg.FileIdle
	return idle || w.bytes >= w.cfg.FileBytes || now.Sub(w.since) >= w.cfg.FileAge || w.cfg.Budget.over()
}

// fileKey names a file by its table, Hive partition, stream, partition and
// offset range: the same input always gets the same name, so a retried upload
// replaces rather than duplicates.
func (w *Writer) fileKey(part string) string {
	return fmt.Sprintf("tables/%s/%s/%s-%d-%d-%d.parquet", w.cfg.Table, part, w.cfg.Stream, w.cfg.Partition, w.first, w.last)
}

// Flush writes the buffered rows and returns the next offset to read (all
// offsets below it are durable in the table). With nothing buffered it
// returns -1 and writes nothing; so it does while it repeats a rolled-back
// flush (ReplayLast) whose end the rows have not reached: the rows are left
// for whoever repeats it next (the caller stops without committing them).
//
// Protocol (see DESIGN.md, "Effectively-once output"): encode every file;
// record them as pending in the progress object; upload them; record the new
// Next. A crash at any point is repaired by Open (claimProgress). On error
// the encoded files are kept and the caller retries Flush (and adds nothing
// before it succeeds).
func (w *Writer) Flush(ctx context.Context) (int64, error) {
	if w.first < 0 || w.replay >= 0 && w.last < w.replay {
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
		pending := Progress{Next: rollback, State: w.state, Epoch: w.epoch, Replay: w.replayRecord(),
			Pending: &Pending{Next: next, Files: keys, State: w.sealedState}}
		if err := checkEpoch(ctx, w.cfg.Bucket, w.progressKey, w.epoch); err != nil {
			return -1, err
		}
		// A retry after a failed final write must not write pending again:
		// the first attempt's final write may have landed after all, and
		// compaction may have merged these files since.
		if !w.pendingWritten {
			if err := w.save(ctx, pending); err != nil {
				return -1, fmt.Errorf("cannot write %s: %w", where, err)
			}
			w.pendingWritten = true
		}
		failpoint.Hit("sink.after-pending")
		for _, k := range keys {
			if err := checkEpoch(ctx, w.cfg.Bucket, w.progressKey, w.epoch); err != nil {
				return -1, err
			}
			if err := w.cfg.Bucket.Put(ctx, k, w.encoded[k]); err != nil {
				return -1, fmt.Errorf("cannot write %s: %w", where, err)
			}
			failpoint.Hit("sink.after-file")
		}
	}
	if err := checkEpoch(ctx, w.cfg.Bucket, w.progressKey, w.epoch); err != nil {
		return -1, err
	}
	if err := w.save(ctx, Progress{Next: next, Epoch: w.epoch, State: w.sealedState}); err != nil {
		return -1, fmt.Errorf("cannot write %s: %w", where, err)
	}
	failpoint.Hit("sink.after-progress")
	w.release()
	w.cfg.Budget.add(-w.bytes)
	w.first, w.last, w.bytes, w.next, w.state, w.pendingWritten, w.replay = -1, -1, 0, next, w.sealedState, false, -1
	return next, nil
}

func (w *Writer) replayRecord() *Replay {
	if w.replay < 0 {
		return nil
	}
	return &Replay{First: w.replayFirst, Last: w.replay}
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
	if a.Next != b.Next || a.Epoch != b.Epoch || (a.Pending == nil) != (b.Pending == nil) {
		return false
	}
	return a.Pending == nil || (a.Pending.Next == b.Pending.Next && slices.Equal(a.Pending.Files, b.Pending.Files))
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
	for part, rec := range w.sealed {
		data, err := encodeParquet(rec, w.cfg.RowGroupRows)
		if err != nil {
			return fmt.Errorf("cannot encode offsets %d..%d of %s/%d for table %q: %w", w.first, w.last, w.cfg.Stream, w.cfg.Partition, w.cfg.Table, err)
		}
		files[w.fileKey(part)] = data
	}
	w.encoded = files
	return nil
}

func (w *Writer) release() {
	for _, rec := range w.sealed {
		rec.Release()
	}
	w.sealed, w.encoded = nil, nil
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
