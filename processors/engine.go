package processors

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// ReloadInterval is how often the engine re-reads the registry from the
// object store, to see pipelines created through another process.
const ReloadInterval = 10 * time.Second

// Engine runs every pipeline of the registry in this process: one
// consumer-group member per pipeline. Start more processes with the worker
// role and Kafka spreads the partitions over them.
type Engine struct {
	reg     *deploy.Registry
	bucket  objstore.Bucket
	brokers []string
	log     *slog.Logger

	mu      sync.Mutex
	runners map[string]*runnerHandle
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
		t, ok := e.reg.Table(p.Table)
		if !ok {
			e.log.Warn("pipeline's table does not exist; not running it", "pipeline", p.Name, "table", p.Table)
			continue
		}
		schema := t.Schema
		out[p.Name] = Pipeline{
			Name: p.Name, Group: p.ConsumerGroup(), Stream: p.Stream, Table: p.Table, Schema: &schema,
			BatchSize: p.BatchSize, BatchBytes: p.BatchBytes, BatchWindow: time.Duration(p.BatchWindow),
			FileBytes: t.FileBytes, FileAge: time.Duration(t.FileAge),
		}
	}
	return out
}

func (e *Engine) sync() {
	want := e.resolve()
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, h := range e.runners {
		if spec, ok := want[name]; !ok || !sameSpec(spec, h.spec) {
			e.log.Info("stopping pipeline", "pipeline", name)
			h.stop()
			delete(e.runners, name)
		}
	}
	for name, spec := range want {
		if _, ok := e.runners[name]; ok {
			continue
		}
		r, err := newRunner(spec, e.bucket, e.brokers, e.log)
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

func sameSpec(a, b Pipeline) bool {
	return a.Stream == b.Stream && a.Table == b.Table && a.BatchSize == b.BatchSize &&
		a.BatchBytes == b.BatchBytes && a.BatchWindow == b.BatchWindow && a.FileBytes == b.FileBytes &&
		a.FileAge == b.FileAge && slices.Equal(a.Schema.Columns, b.Schema.Columns)
}

// stop ends the poll loop, then drains the partitions and leaves the group.
func (h *runnerHandle) stop() {
	h.cancel()
	<-h.done
	h.r.close()
}

func (e *Engine) stopAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	var wg sync.WaitGroup
	for name, h := range e.runners {
		wg.Go(func() {
			start := time.Now()
			h.stop()
			e.log.Info("pipeline stopped", "pipeline", name, "took", time.Since(start).Round(time.Millisecond))
		})
		delete(e.runners, name)
	}
	wg.Wait()
}

// Status reports the partitions of pipeline name that this process runs.
func (e *Engine) Status(ctx context.Context, name string) ([]PartitionStatus, bool) {
	e.mu.Lock()
	h, ok := e.runners[name]
	e.mu.Unlock()
	if !ok {
		return nil, false
	}
	st := h.r.status(ctx)
	slices.SortFunc(st, func(a, b PartitionStatus) int { return int(a.Partition - b.Partition) })
	return st, true
}
