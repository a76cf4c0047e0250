package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/failpoint"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// Partition states shown in a pipeline's status (see deploy.PartitionStatus).
const (
	StateRunning    = deploy.StateRunning
	StateRetrying   = deploy.StateRetrying
	StatePaused     = deploy.StatePaused
	StateUnassigned = deploy.StateUnassigned
	StateStopped    = deploy.StateStopped
)

// PartitionStatus is what an operator sees of one partition of a pipeline.
type PartitionStatus = deploy.PartitionStatus

// inbox is the queue between the poll loop and one partition's worker. The
// poll loop never blocks on it: when it holds more than its high watermark
// (records or bytes) the pipeline pauses fetching of that partition (and
// only that one), and the worker resumes it once it drained below half.
type inbox struct {
	mu       sync.Mutex
	recs     []Record
	bytes    int
	wake     chan struct{} // capacity 1
	paused   bool
	maxRecs  int
	maxBytes int
	// pause and resume stop and restart fetching the partition; they are
	// called under mu, so they cannot cross each other.
	pause, resume func()
}

func (q *inbox) full() bool { return len(q.recs) >= q.maxRecs || q.bytes >= q.maxBytes }

func (q *inbox) push(rs []Record) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.recs = append(q.recs, rs...)
	for _, r := range rs {
		q.bytes += len(r.Value)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	if !q.paused && q.full() {
		q.paused = true
		q.pause()
	}
}

// take removes up to n records or maxBytes bytes (at least one record).
func (q *inbox) take(n, maxBytes int) []Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, bytes := 0, 0
	for i < len(q.recs) && i < n && (i == 0 || bytes+len(q.recs[i].Value) <= maxBytes) {
		bytes += len(q.recs[i].Value)
		i++
	}
	rs := append([]Record(nil), q.recs[:i]...)
	q.recs = q.recs[i:]
	q.bytes -= bytes
	if q.paused && len(q.recs) < q.maxRecs/2 && q.bytes < q.maxBytes/2 {
		q.paused = false
		q.resume()
	}
	return rs
}

// partition runs one stream partition of a pipeline: it cuts batches in
// offset order, processes one at a time (retrying a failed one forever with
// backoff, never skipping it), adds the rows to the sink writer, flushes when
// the writer is due, and commits what the flush made durable.
type partition struct {
	p      *Pipeline
	id     int32
	w      *sink.Writer
	proc   Processor
	in     *inbox
	commit func(ctx context.Context, next int64)
	// deadLetter sends a batch's records, with why they were given up, to
	// the pipeline's dead-letter stream.
	deadLetter func(ctx context.Context, b *Batch, why giveUp) error
	drain      <-chan struct{} // closed to finish the batch, flush, commit and stop
	log        *slog.Logger    // with pipeline, stream and partition; logger adds the offset
	obs        Observer

	next   int64 // the offset the next batch must start at or after; -1: any
	broken error // set when the partition stopped for good (errLogBehind)

	mu     sync.Mutex
	status PartitionStatus
	g      gauges
}

// logger is pt.log with the offset the partition is at: the first offset
// of the batch in flight, else the committed offset (everything below it is
// in the table).
func (pt *partition) logger() *slog.Logger {
	pt.mu.Lock()
	at := pt.status.Committed
	if !pt.g.inFlight.IsZero() {
		at = pt.g.inFlightAt
	}
	pt.mu.Unlock()
	return pt.log.With("offset", at)
}

func (pt *partition) setStatus(f func(s *PartitionStatus)) {
	pt.mu.Lock()
	f(&pt.status)
	pt.mu.Unlock()
}

// publishStatus records the partition's status in its progress object, so
// that every process (an API node without workers too) shows it; with
// now, at once (a state change), else with the next progress write. It is
// best effort: a store that fails is retried by the flush anyway.
func (pt *partition) publishStatus(ctx context.Context, now bool) {
	if pt.w == nil {
		return
	}
	st := pt.snapshot()
	data, err := json.Marshal(st)
	if err != nil {
		return
	}
	if !now {
		pt.w.SetStatus(data)
		return
	}
	if err := pt.w.SaveStatus(ctx, data); err != nil && ctx.Err() == nil && !errors.Is(err, sink.ErrFenced) {
		pt.logger().Warn("cannot record partition status in the object store", "err", err)
	}
}

// snapshot is the partition's status now, with OldestUnprocessed (the
// bookkeeping of PartitionGauges.Oldest).
func (pt *partition) snapshot() PartitionStatus {
	pt.mu.Lock()
	st, oldest := pt.status, pt.g.inFlight
	pt.mu.Unlock()
	if oldest.IsZero() && pt.in != nil {
		oldest = pt.in.oldest()
	}
	st.OldestUnprocessed = nil
	if !oldest.IsZero() {
		oldest = oldest.UTC()
		st.OldestUnprocessed = &oldest
	}
	return st
}

// run processes until ctx ends. When drain ends (a graceful stop or a
// revoke), it finishes the batch in flight, flushes and commits, then
// returns; when ctx ends it returns at once, committing nothing more.
func (pt *partition) run(ctx context.Context) {
	defer pt.w.Close()
	defer pt.proc.Close()
	tick := time.NewTicker(min(pt.p.FileAge/4, time.Second))
	defer tick.Stop()
	for {
		b, draining := pt.nextBatch(ctx, tick.C)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(pt.broken, errLogBehind) {
			return
		}
		if b != nil && !pt.process(ctx, b) {
			if pt.draining() { // stopped retrying a batch: keep what came before it
				pt.flush(ctx)
			}
			return
		}
		pt.setGauges(func(g *gauges) { g.inFlight = time.Time{} })
		if draining || pt.w.Due(time.Now()) {
			if !pt.flush(ctx) {
				return
			}
		}
		if draining {
			return
		}
		if pt.w.CompactDue(time.Now()) && !pt.compact(ctx) {
			return
		}
	}
}

// nextBatch waits for a batch: BatchSize records, BatchBytes bytes, or
// whatever arrived within BatchWindow of the first record. It returns nil on
// a clock tick with nothing to do (so the caller can flush an idle writer)
// and draining=true once drain is closed.
func (pt *partition) nextBatch(ctx context.Context, tick <-chan time.Time) (*Batch, bool) {
	b := &Batch{Stream: pt.p.Stream, Partition: pt.id}
	var window <-chan time.Time
	for {
		if pt.draining() { // records not yet taken are left to the next owner
			return nonEmpty(b), true
		}
		recs := pt.in.take(pt.p.BatchSize-len(b.Records), pt.p.BatchBytes-b.Bytes)
		for _, r := range recs {
			if r.Offset < pt.next {
				pt.logBehind(r.Offset)
				return nonEmpty(b), false
			}
			if len(b.Records) == 0 {
				pt.setGauges(func(g *gauges) { g.inFlight, g.inFlightAt = r.Timestamp, r.Offset })
			}
			b.Records = append(b.Records, r)
			b.Bytes += len(r.Value)
			pt.next = r.Offset + 1
		}
		if len(b.Records) >= pt.p.BatchSize || b.Bytes >= pt.p.BatchBytes {
			return b, false
		}
		if len(b.Records) > 0 && window == nil {
			t := time.NewTimer(pt.p.BatchWindow)
			defer t.Stop()
			window = t.C
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-pt.drain:
			return nonEmpty(b), true
		case <-window:
			return b, false
		case <-tick:
			if window == nil {
				return nil, false
			}
		case <-pt.in.wake:
		}
	}
}

// errLogBehind marks a partition whose Kafka log restarted below the offset
// the table is already at (a new broker data directory over an existing
// store, or a broker that lost acknowledged records).
var errLogBehind = errors.New("the Kafka log is behind the table")

// logBehind stops the partition: records at offsets the table already holds
// are arriving, which means the log was reset or lost. Reading on would
// silently skip or duplicate records, so the partition stops and says why.
func (pt *partition) logBehind(offset int64) {
	err := fmt.Errorf("cannot read partition %d of stream %q: got offset %d but the table already holds everything below %d: %w; "+
		"the broker's log was reset or lost data: restore it, or delete the pipeline's progress objects under _sluice/progress/%s/ to read the log from its start again",
		pt.id, pt.p.Stream, offset, pt.next, errLogBehind, pt.p.Name)
	pt.broken = err
	pt.logger().Error("partition stopped", "err", err)
	pt.setStatus(func(s *PartitionStatus) { s.State, s.LastError, s.Since = StateStopped, err.Error(), time.Now().UTC() })
	pt.publishStatus(context.Background(), true)
}

// compact runs the owner's compaction pass (sink.Writer.Compact) between
// batches; a failure is logged and tried again at the next interval. It
// returns false once the partition is fenced (another worker owns it).
func (pt *partition) compact(ctx context.Context) bool {
	start := time.Now()
	n, err := pt.w.Compact(ctx)
	switch {
	case errors.Is(err, sink.ErrFenced):
		pt.logger().Warn("partition fenced by a newer owner; stopping it", "err", err)
		pt.setStatus(func(s *PartitionStatus) { s.State, s.LastError = StateUnassigned, err.Error() })
		return false
	case err != nil && ctx.Err() == nil:
		pt.logger().Warn("compaction failed; retrying at the next interval", "err", err)
	case n > 0:
		pt.obs.Compacted(pt.p.Table, n)
		pt.logger().Info("compacted", "table", pt.p.Table, "files_merged", n, "took", time.Since(start).Round(time.Millisecond))
	}
	return ctx.Err() == nil
}

// draining reports whether the partition was asked to stop.
func (pt *partition) draining() bool {
	select {
	case <-pt.drain:
		return true
	default:
		return false
	}
}

func nonEmpty(b *Batch) *Batch {
	if len(b.Records) == 0 {
		return nil
	}
	return b
}

// process turns the batch into rows and adds them to the writer, retrying
// forever unless the pipeline gives up on batches (then: bisect, dead
// letter); it returns false only when ctx ends first.
func (pt *partition) process(ctx context.Context, b *Batch) bool {
	var lastErr error
	attempts := 0
	ok, gaveUp := pt.retryUntil(ctx, func() error {
		attempts++
		start := time.Now()
		rows, err := pt.proc.Process(ctx, b)
		took := time.Since(start)
		if err != nil {
			pt.obs.Attempt(pt.p.Name, pt.id, took, took, err)
			lastErr = err
			// Rows of earlier batches must not wait behind a batch that
			// may fail for a long time: write them now.
			if attempts == 1 && pt.w.Buffered() {
				pt.flush(ctx)
			}
			return err
		}
		err = pt.add(rows, b)
		pt.obs.Attempt(pt.p.Name, pt.id, took, time.Since(start), err)
		if err == nil {
			pt.obs.Processed(pt.p.Name, pt.id, len(b.Records), len(rows), 0)
		}
		return err
	}, func(attempt int) bool { return !IsInfrastructure(lastErr) && pt.givesUp(attempt, b) })
	if !gaveUp {
		return ok
	}
	if pt.p.BisectOnError && len(b.Records) > 1 {
		first, second := b.split()
		return pt.process(ctx, first) && pt.process(ctx, second)
	}
	pt.logger().Warn("giving up on batch; sending its records to the dead-letter stream",
		"first", b.First(), "last", b.Last(), "dead_letter", pt.p.DeadLetter, "err", lastErr)
	why := pt.giveUp(lastErr, attempts)
	sent := pt.retry(ctx, func() error {
		if err := pt.deadLetter(ctx, b, why); err != nil {
			return fmt.Errorf("cannot send offsets %d..%d to dead-letter stream %q: %w", b.First(), b.Last(), pt.p.DeadLetter, err)
		}
		failpoint.Hit("processors.after-dead-letter") // sent, not yet recorded: a crash here sends them again
		return pt.add(nil, b)
	})
	if sent {
		pt.setStatus(func(s *PartitionStatus) { s.GivenUp++ })
		pt.obs.Processed(pt.p.Name, pt.id, len(b.Records), 0, len(b.Records))
	}
	return sent
}

// add adds b's rows to the writer (none for a batch given up), keeping the
// gauges of what is buffered.
func (pt *partition) add(rows []schemas.Row, b *Batch) error {
	buffered := pt.w.Buffered()
	if err := pt.w.Add(rows, b.First(), b.Last(), b.Bytes); err != nil {
		return err
	}
	pt.setGauges(func(g *gauges) {
		if !buffered {
			g.unflushed = b.Records[0].Timestamp
		}
		g.bufferedRows += int64(len(rows))
	})
	return nil
}

func (pt *partition) setGauges(f func(g *gauges)) {
	pt.mu.Lock()
	f(&pt.g)
	pt.mu.Unlock()
}

// giveUp describes the giving up, now, on a batch that failed attempts
// times, last with err.
func (pt *partition) giveUp(err error, attempts int) giveUp {
	why := giveUp{err: err, attempts: attempts, function: pt.p.Function, committed: pt.snapshot().Committed, at: time.Now()}
	if f, ok := pt.proc.(*Function); ok {
		why.version = f.Version()
	}
	return why
}

// givesUp reports whether a batch that failed attempt times is given up.
func (pt *partition) givesUp(attempt int, b *Batch) bool {
	if pt.p.MaxAttempts > 0 && attempt >= pt.p.MaxAttempts {
		return true
	}
	return pt.p.MaxRecordAge > 0 && time.Since(b.Records[0].Timestamp) > pt.p.MaxRecordAge
}

// flush writes the buffered rows (retrying forever), with the processor's
// state if it keeps one, and commits.
func (pt *partition) flush(ctx context.Context) bool {
	if st, ok := pt.proc.(Stateful); ok {
		pt.w.SetState(st.State())
	}
	pt.publishStatus(ctx, false)
	var next int64 = -1
	start := time.Now()
	ok := pt.retry(ctx, func() (err error) {
		next, err = pt.w.Flush(ctx)
		return err
	})
	if ok && next >= 0 {
		st := pt.w.LastFlush()
		pt.obs.Flushed(pt.p.Table, st.Files, st.Bytes, time.Since(start))
		pt.setGauges(func(g *gauges) { g.bufferedRows, g.unflushed = 0, time.Time{} })
		pt.setStatus(func(s *PartitionStatus) { s.Committed = next })
		pt.commit(ctx, next)
	}
	return ok
}

// retry runs f until it succeeds, with capped exponential backoff, showing
// the partition as retrying meanwhile. It returns false if ctx ends first.
func (pt *partition) retry(ctx context.Context, f func() error) bool {
	ok, _ := pt.retryUntil(ctx, f, nil)
	return ok
}

// retryUntil is retry that stops, with gaveUp, once giveUp(attempts) says so
// after a failure.
func (pt *partition) retryUntil(ctx context.Context, f func() error, giveUp func(attempt int) bool) (ok, gaveUp bool) {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			if attempt > 1 {
				pt.logger().Info("partition recovered", "attempts", attempt)
				pt.setStatus(func(s *PartitionStatus) {
					s.State, s.Attempts, s.LastError, s.Stderr, s.Since = StateRunning, 0, "", "", time.Now().UTC()
				})
				pt.publishStatus(ctx, true)
			}
			if f, ok := pt.proc.(*Function); ok {
				pt.setStatus(func(s *PartitionStatus) { s.FunctionVersion = f.Version() })
			}
			return true, false
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return false, false
		}
		if errors.Is(err, sink.ErrFenced) {
			// Another worker owns the partition now: stop, commit nothing.
			pt.logger().Warn("partition fenced by a newer owner; stopping it", "err", err)
			pt.setStatus(func(s *PartitionStatus) { s.State, s.LastError = StateUnassigned, err.Error() })
			return false, false
		}
		if giveUp != nil && giveUp(attempt) {
			pt.setStatus(func(s *PartitionStatus) {
				s.State, s.Attempts, s.Since = StateRunning, 0, time.Now().UTC()
			})
			return false, true
		}
		wait := backoff(attempt)
		pt.logger().Warn("batch failed; retrying", "attempt", attempt, "in", wait, "err", err)
		pt.setStatus(func(s *PartitionStatus) {
			if s.State != StateRetrying {
				s.State, s.Since = StateRetrying, time.Now().UTC()
			}
			s.Attempts, s.LastError = attempt, err.Error()
			if f, ok := pt.proc.(*Function); ok {
				s.FunctionVersion, s.Stderr = f.Version(), stderrTail(f.LastLog())
			}
		})
		pt.publishStatus(ctx, true)
		select {
		case <-ctx.Done():
			return false, false
		case <-pt.drain:
			return false, false
		case <-time.After(wait):
		}
	}
}

// stderrTail keeps the last 2 KiB of a function's log for the status.
func stderrTail(log []byte) string {
	const max = 2 << 10
	if len(log) > max {
		log = log[len(log)-max:]
	}
	return string(log)
}
