package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/kafkax"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/processors/fn"
	"github.com/sluice-dev/sluice/processors/fnlog"
	"github.com/sluice-dev/sluice/sink"
)

// ReloadInterval is how often the engine re-reads the registry from the
// object store, to see pipelines created through another process.
const ReloadInterval = 10 * time.Second

// Engine runs every pipeline of the registry in this process: one
// consumer-group member per pipeline. Start more processes with the worker
// role and Kafka spreads the partitions over them.
type Engine struct {
	// InstanceID, when set, makes this process a static member of every
	// pipeline's consumer group (KIP-345): restarted with the same ID, it
	// gets its partitions back at once instead of waiting for the session
	// timeout of its previous incarnation. It must be unique per worker
	// process and stable across its restarts. Set it before Run.
	InstanceID string
	// LeaveOnStop makes a static member leave its groups when it stops
	// gracefully, so its partitions move to the other workers at once
	// (`sluice serve`); without it a restart gets them back at once
	// (`sluice up`, the only worker).
	LeaveOnStop bool
	// SessionTimeout is how long the group waits for a worker that stopped
	// answering before its partitions move (0: kgo's default, 45s).
	SessionTimeout time.Duration
	// FunctionCache is where compiled functions are cached (survives
	// restarts). Set it before Run.
	FunctionCache string
	// KafkaOpts are added to every Kafka client the engine makes (the
	// embedded broker's credentials and TLS).
	KafkaOpts []kgo.Opt
	// FunctionMemory bounds what function instances reserve together
	// (--function-memory; see fn.Host.MemoryLimit).
	FunctionMemory int64
	// AllowExec enables exec functions (--allow-exec); without it their
	// partitions retry with fn.ErrExecDisabled.
	AllowExec bool
	// Observer is told what partitions do, for metrics (nil: nothing).
	// Set it before Run.
	Observer Observer
	// Logs stores what functions write to stderr (nil: it is dropped). Set
	// it before Run.
	Logs *fnlog.Log
	// Budget bounds the rows buffered by all partitions (nil: unbounded).
	Budget *sink.Budget
	// CompactInterval is how often each partition's owner merges its small
	// files, and how often this process collects the table files no
	// manifest lists (0: never). CompactTarget is the size below which a
	// file is small. RetireGrace is how long a merged-away file is kept for
	// running queries (0: sink.DefaultRetireGrace).
	CompactInterval time.Duration
	CompactTarget   int64
	RetireGrace     time.Duration

	reg     *deploy.Registry
	bucket  objstore.Bucket
	brokers []string
	log     *slog.Logger

	mu      sync.Mutex
	runners map[string]*runnerHandle
	admin   *kgo.Client // for end offsets in status; created on first use
	host    *fn.Host    // function runtimes; created with the first function pipeline
}

type runnerHandle struct {
	r      *runner
	spec   Pipeline
	cancel context.CancelFunc
	done   chan struct{}
}

// NewEngine returns an engine; Run starts it.
func NewEngine(reg *deploy.Registry, bucket objstore.Bucket, brokers []string, log *slog.Logger) *Engine {
	return &Engine{reg: reg, bucket: bucket, brokers: brokers, log: log, runners: map[string]*runnerHandle{}}
}

// Run keeps the running pipelines in line with the registry until ctx ends,
// then stops them all gracefully (drain, flush, commit, leave the group).
func (e *Engine) Run(ctx context.Context) {
	defer e.stopAll()
	if e.CompactInterval > 0 {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { defer close(done); e.gcLoop(ctx) }()
	}
	for {
		e.sync()
		select {
		case <-ctx.Done():
			return
		case <-e.reg.Changed():
		case <-time.After(ReloadInterval):
			if err := e.reg.Reload(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("cannot reload registry", "err", err)
			}
		}
	}
}

// resolve turns the registry's pipelines into what the engine runs.
func (e *Engine) resolve() map[string]Pipeline {
	out := map[string]Pipeline{}
	for _, p := range e.reg.Pipelines() {
		if p.Paused {
			continue
		}
		t, ok := e.reg.Table(p.Table)
		if !ok {
			e.log.Warn("pipeline's table does not exist; not running it", "pipeline", p.Name, "table", p.Table)
			continue
		}
		schema := t.Schema
		out[p.Name] = Pipeline{
			Name: p.Name, Group: p.ConsumerGroup(), Stream: p.Stream, Function: p.Function, Table: p.Table, Schema: &schema,
			BatchSize: p.BatchSize, BatchBytes: p.BatchBytes, BatchWindow: time.Duration(p.BatchWindow),
			FileBytes: t.FileBytes, FileAge: time.Duration(t.FileAge), FileIdle: time.Duration(t.FileIdle),
			RowGroups: t.RowGroupRows, Budget: e.Budget,
			CompactInterval: e.CompactInterval, CompactTarget: e.CompactTarget, RetireGrace: e.RetireGrace, Worker: e.InstanceID,
			MaxAttempts: p.MaxAttempts, MaxRecordAge: time.Duration(p.MaxRecordAge), DeadLetter: deadLetterStream(p),
			BisectOnError: p.BisectOnError, DeadLetterRows: p.Internal == deploy.InternalDeadLetters,
		}
	}
	return out
}

// deadLetterStream is where p's given-up records go: its dead_letter
// stream, or the internal stream of its dead_letter_table.
func deadLetterStream(p deploy.Pipeline) string {
	if p.DeadLetterTable != "" {
		return deploy.DeadLetterStream(p.DeadLetterTable)
	}
	return p.DeadLetter
}

// sync is called from Run's goroutine only. Pipelines are stopped (which
// may take up to DrainTimeout) without holding e.mu, so status requests
// are answered meanwhile.
func (e *Engine) sync() {
	want := e.resolve()
	e.mu.Lock()
	var stopping []*runnerHandle
	for name, h := range e.runners {
		if spec, ok := want[name]; !ok || !sameSpec(spec, h.spec) {
			e.log.Info("stopping pipeline", "pipeline", name)
			stopping = append(stopping, h)
			delete(e.runners, name)
		}
	}
	e.mu.Unlock()
	for _, h := range stopping {
		h.stop(true) // the pipeline changed or went away: no one rejoins as this member
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, spec := range want {
		if _, ok := e.runners[name]; ok {
			continue
		}
		newProc, err := e.processorFor(spec)
		if err != nil {
			e.log.Error("cannot start pipeline", "pipeline", name, "err", err)
			continue
		}
		obs := e.Observer
		if obs == nil {
			obs = nopObserver{}
		}
		r, err := newRunner(spec, e.bucket, e.brokers, e.KafkaOpts, e.InstanceID, e.SessionTimeout, newProc, e.log, obs)
		if err != nil {
			e.log.Error("cannot start pipeline", "pipeline", name, "err", err)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		h := &runnerHandle{r: r, spec: spec, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(h.done)
			r.poll(ctx)
		}()
		e.runners[name] = h
		e.log.Info("started pipeline", "pipeline", name, "stream", spec.Stream, "table", spec.Table)
	}
}

// processorFor returns how to make the processor of each of spec's
// partitions: DeadLetterRows for a dead-letter table's internal pipeline,
// Direct, or Function with the shared function host.
func (e *Engine) processorFor(spec Pipeline) (func() Processor, error) {
	if spec.DeadLetterRows {
		return func() Processor { return &DeadLetterRows{Schema: spec.Schema} }, nil
	}
	if spec.Function == "" {
		return func() Processor { return Direct{Schema: spec.Schema} }, nil
	}
	if e.host == nil {
		h, err := fn.NewHost(context.Background(), e.FunctionCache)
		if err != nil {
			return nil, err
		}
		h.AllowExec = e.AllowExec
		h.MemoryLimit = e.FunctionMemory
		e.host = h
	}
	host := e.host
	return func() Processor {
		return &Function{Ref: spec.Function, Reg: e.reg, Host: host, Schema: spec.Schema, Logs: e.Logs, Pipeline: spec.Name}
	}, nil
}

func sameSpec(a, b Pipeline) bool {
	return a.Stream == b.Stream && a.Table == b.Table && a.Function == b.Function && a.BatchSize == b.BatchSize &&
		a.BatchBytes == b.BatchBytes && a.BatchWindow == b.BatchWindow && a.FileBytes == b.FileBytes &&
		a.FileAge == b.FileAge && a.FileIdle == b.FileIdle && a.RowGroups == b.RowGroups && reflect.DeepEqual(a.Schema, b.Schema) &&
		a.MaxAttempts == b.MaxAttempts && a.MaxRecordAge == b.MaxRecordAge && a.DeadLetter == b.DeadLetter &&
		a.BisectOnError == b.BisectOnError && a.DeadLetterRows == b.DeadLetterRows
}

// stop ends the poll loop, then drains the partitions and closes the client.
func (h *runnerHandle) stop(leave bool) {
	h.cancel()
	<-h.done
	h.r.close(leave)
}

func (e *Engine) stopAll() {
	e.mu.Lock()
	runners, admin, host := e.runners, e.admin, e.host
	e.runners, e.admin, e.host = map[string]*runnerHandle{}, nil, nil
	e.mu.Unlock()
	if admin != nil {
		defer admin.Close()
	}
	if host != nil {
		defer host.Close(context.Background())
	}
	var wg sync.WaitGroup
	for name, h := range runners {
		wg.Go(func() {
			start := time.Now()
			h.stop(e.LeaveOnStop)
			e.log.Info("pipeline stopped", "pipeline", name, "took", time.Since(start).Round(time.Millisecond))
		})
	}
	wg.Wait()
}

// Close releases what Status holds, in a process that does not Run the
// engine (Run releases it when it returns).
func (e *Engine) Close() { e.stopAll() }

// Status reports every partition of pipeline name, from any process (one
// that runs no workers too): the partitions this process runs as they are
// now, the others as their owner last recorded them in their progress
// objects, checked against the pipeline's consumer group (a partition no
// live member holds is unassigned, whatever its owner last wrote).
func (e *Engine) Status(ctx context.Context, name string) ([]PartitionStatus, error) {
	p, ok := e.reg.Pipeline(name)
	if !ok {
		return nil, fmt.Errorf("pipeline %q does not exist", name)
	}
	s, ok := e.reg.Stream(p.Stream)
	if !ok {
		return nil, fmt.Errorf("stream %q of pipeline %q does not exist", p.Stream, name)
	}
	local := map[int32]PartitionStatus{}
	e.mu.Lock()
	h := e.runners[name]
	e.mu.Unlock()
	if h != nil {
		for _, st := range h.r.snapshot() {
			local[st.Partition] = st
		}
	}
	owners, ownersErr := e.groupOwners(ctx, p.ConsumerGroup(), p.Stream)
	if ownersErr != nil {
		e.log.Warn("cannot read the pipeline's consumer group for status", "pipeline", name, "err", ownersErr)
	}
	out := make([]PartitionStatus, 0, s.Partitions)
	for id := range s.Partitions {
		st, ok := local[id]
		if !ok {
			var err error
			if st, err = e.storedStatus(ctx, p, id, owners); err != nil {
				return nil, err
			}
		}
		out = append(out, st)
	}
	if ends, err := e.endOffsets(ctx, p.Stream); err == nil {
		for i := range out {
			out[i].EndOffset = ends[out[i].Partition]
			out[i].Lag = max(out[i].EndOffset-out[i].Committed, 0)
		}
	} else {
		e.log.Warn("cannot read end offsets for status", "stream", p.Stream, "err", err)
	}
	setLagAge(out, time.Now())
	return out, nil
}

// setLagAge sets LagAgeSeconds from OldestUnprocessed, and clears both for a
// partition whose table holds everything in Kafka (a status its owner
// recorded before its last flush may still name a record since written).
func setLagAge(out []PartitionStatus, now time.Time) {
	for i := range out {
		st := &out[i]
		if st.OldestUnprocessed == nil || (st.EndOffset > 0 && st.Lag == 0) {
			st.OldestUnprocessed, st.LagAgeSeconds = nil, 0
			continue
		}
		st.LagAgeSeconds = max(now.Sub(*st.OldestUnprocessed).Seconds(), 0)
	}
}

// storedStatus is partition id's status as its owner recorded it in the
// progress object, corrected by who holds it now in the group (owners; nil:
// unknown, the recorded state is shown as it is).
func (e *Engine) storedStatus(ctx context.Context, p deploy.Pipeline, id int32, owners map[int32]string) (PartitionStatus, error) {
	st := PartitionStatus{Partition: id, State: StateUnassigned}
	prog, err := sink.LoadProgress(ctx, e.bucket, p.Name, p.Stream, id)
	if errors.Is(err, sink.ErrCorruptProgress) {
		st.State, st.LastError = StateStopped, err.Error() // this partition's problem: show it, show the others
		return st, nil
	}
	if err != nil {
		// This partition's problem too: show it with the error (its worker,
		// if any, shows it retrying), and the other partitions as they are.
		st.LastError = err.Error()
	}
	if prog != nil {
		if len(prog.Status) > 0 && json.Unmarshal(prog.Status, &st) != nil {
			st = PartitionStatus{Partition: id, State: StateUnassigned}
		}
		st.Partition, st.Committed = id, max(prog.Next, 0)
		if st.Since.IsZero() {
			st.Since = prog.Updated
		}
	}
	if owners != nil {
		who, held := owners[id]
		switch {
		case held:
			st.Worker = who
			if st.State == StateUnassigned || st.State == "" {
				st.State = StateRunning
			}
		case st.State != StateStopped:
			st.State = StateUnassigned
		}
	}
	if p.Paused {
		st.State = StatePaused
	}
	return st, nil
}

// groupOwners asks Kafka which member holds each partition of the group.
func (e *Engine) groupOwners(ctx context.Context, group, stream string) (map[int32]string, error) {
	cl, err := e.adminClient()
	if err != nil {
		return nil, err
	}
	return kafkax.GroupOwners(ctx, cl, group, stream)
}

// endOffsets asks Kafka for the stream's end offsets, with a client shared
// by all status calls.
func (e *Engine) endOffsets(ctx context.Context, stream string) (map[int32]int64, error) {
	cl, err := e.adminClient()
	if err != nil {
		return nil, err
	}
	return kafkax.EndOffsets(ctx, cl, stream)
}

// adminClient is the Kafka client shared by all status calls.
func (e *Engine) adminClient() (*kgo.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.admin == nil {
		cl, err := kafkax.NewClient(e.brokers, e.KafkaOpts...)
		if err != nil {
			return nil, err
		}
		e.admin = cl
	}
	return e.admin, nil
}

// gcLoop deletes, every CompactInterval until ctx ends, the table files no
// manifest lists (sink.CollectGarbage). Compaction itself is done by each
// partition's owner.
func (e *Engine) gcLoop(ctx context.Context) {
	tick := time.NewTicker(e.CompactInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, t := range e.reg.Tables() {
			sources := e.reg.TableSources(t.Name)
			if n, err := sink.CollectGarbage(ctx, e.bucket, t.Name, sources, e.log); err != nil && ctx.Err() == nil {
				e.log.Warn("cannot collect unreferenced table files; retrying at the next pass", "table", t.Name, "err", err)
			} else if n > 0 {
				e.log.Info("collected unreferenced table files", "table", t.Name, "files", n)
			}
		}
	}
}
