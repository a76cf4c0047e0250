package processors

import (
	"context"
	"time"
)

// Observer is told what the engine's partitions do, for metrics
// (internal/metrics implements it; Engine.Observer nil: nothing is told).
// Calls come from the partitions' goroutines, one partition at a time per
// partition; they must return at once (count, never block).
type Observer interface {
	// PartitionStarted and PartitionStopped bracket this process's
	// ownership of a partition: what is kept per partition is dropped at
	// PartitionStopped, so per-partition series exist only for the
	// partitions a process owns.
	PartitionStarted(pipeline, table string, partition int32)
	PartitionStopped(pipeline string, partition int32)
	// Attempt is one attempt at a batch: the processor (Function: the
	// function call, took fn) and adding its rows to the sink (took total);
	// err is why it failed (nil: it succeeded).
	Attempt(pipeline string, partition int32, fn, total time.Duration, err error)
	// Processed is a batch done: in records read, out rows written, or
	// deadLettered records given up (sent to the dead-letter destination).
	Processed(pipeline string, partition int32, in, out, deadLettered int)
	// Flushed is one flush of a partition's rows into table: files and
	// bytes written, and how long the flush took (retries included).
	Flushed(table string, files int, bytes int64, took time.Duration)
	// Compacted is one compaction pass over a partition's files of table
	// that merged away merged files.
	Compacted(table string, merged int)
}

type nopObserver struct{}

func (nopObserver) PartitionStarted(string, string, int32)                     {}
func (nopObserver) PartitionStopped(string, int32)                             {}
func (nopObserver) Attempt(string, int32, time.Duration, time.Duration, error) {}
func (nopObserver) Processed(string, int32, int, int, int)                     {}
func (nopObserver) Flushed(string, int, int64, time.Duration)                  {}
func (nopObserver) Compacted(string, int)                                      {}

// PartitionGauges is the state of one partition this process owns, as a
// scrape reads it (Engine.Gauges).
type PartitionGauges struct {
	Pipeline, Stream, Table string
	Partition               int32
	State                   string // StateRunning, StateRetrying, StateStopped, StateUnassigned (fenced)
	// Attempts is how many times the batch in flight failed (0: none).
	Attempts int
	// LagRecords is the stream partition's end offset minus Committed (what
	// `pipeline status` shows as lag); -1 when Kafka did not answer.
	LagRecords int64
	// Oldest is the Kafka timestamp of the oldest record fetched but not
	// yet processed: the first record of the batch in flight (being cut,
	// processed or retried), else the first one waiting in the partition's
	// queue; zero when the partition is caught up with what it fetched.
	Oldest time.Time
	// BufferedRows are rows added to the sink and not yet flushed;
	// Unflushed is the Kafka timestamp of the oldest record behind them
	// (zero: none buffered).
	BufferedRows int64
	Unflushed    time.Time
}

// gauges is what a partition's goroutine keeps for PartitionGauges, under
// partition.mu.
type gauges struct {
	inFlight     time.Time // first record of the batch in flight; zero: none
	inFlightAt   int64     // its offset
	bufferedRows int64
	unflushed    time.Time
}

// Gauges reports every partition this process owns, with lag from one
// ListOffsets request per stream (a stream whose end offsets Kafka does not
// give within ctx gets LagRecords -1).
func (e *Engine) Gauges(ctx context.Context) []PartitionGauges {
	e.mu.Lock()
	runners := make([]*runner, 0, len(e.runners))
	for _, h := range e.runners {
		runners = append(runners, h.r)
	}
	e.mu.Unlock()
	var out []PartitionGauges
	ends := map[string]map[int32]int64{}
	for _, r := range runners {
		parts := r.gauges()
		if len(parts) == 0 {
			continue
		}
		if _, ok := ends[r.p.Stream]; !ok {
			end, err := e.endOffsets(ctx, r.p.Stream)
			if err != nil {
				e.log.Warn("cannot read end offsets for metrics", "stream", r.p.Stream, "err", err)
			}
			ends[r.p.Stream] = end // nil on error
		}
		for _, g := range parts {
			g.LagRecords = -1
			if end, ok := ends[r.p.Stream][g.Partition]; ok {
				g.LagRecords = max(end-r.committed(g.Partition), 0)
			}
			out = append(out, g)
		}
	}
	return out
}

// PausedPipelines lists the registry's pipelines and whether each is
// paused (a paused pipeline has no partitions running anywhere).
func (e *Engine) PausedPipelines() map[string]bool {
	out := map[string]bool{}
	for _, p := range e.reg.Pipelines() {
		out[p.Name] = p.Paused
	}
	return out
}

// gauges reports the partitions of r (without LagRecords).
func (r *runner) gauges() []PartitionGauges {
	r.mu.Lock()
	pts := make([]*partition, 0, len(r.parts))
	for _, run := range r.parts {
		pts = append(pts, run.pt)
	}
	r.mu.Unlock()
	out := make([]PartitionGauges, 0, len(pts))
	for _, pt := range pts {
		out = append(out, pt.gauges())
	}
	return out
}

func (r *runner) committed(id int32) int64 {
	r.mu.Lock()
	run := r.parts[id]
	r.mu.Unlock()
	if run == nil {
		return 0
	}
	return run.pt.snapshot().Committed
}

func (pt *partition) gauges() PartitionGauges {
	pt.mu.Lock()
	g := PartitionGauges{Pipeline: pt.p.Name, Stream: pt.p.Stream, Table: pt.p.Table, Partition: pt.id,
		State: pt.status.State, Attempts: pt.status.Attempts,
		Oldest: pt.g.inFlight, BufferedRows: pt.g.bufferedRows, Unflushed: pt.g.unflushed}
	pt.mu.Unlock()
	if g.Oldest.IsZero() && pt.in != nil {
		g.Oldest = pt.in.oldest()
	}
	return g
}

// oldest is the timestamp of the first record waiting (zero: none).
func (q *inbox) oldest() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.recs) == 0 {
		return time.Time{}
	}
	return q.recs[0].Timestamp
}
