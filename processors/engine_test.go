package processors_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/e2e"
	"github.com/sluice-dev/sluice/internal/kafkax"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/processors"
	"github.com/sluice-dev/sluice/processors/fnlog"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// flakyBucket fails every Put of one partition's files while broken is set:
// a storage outage seen by one partition only.
type flakyBucket struct {
	*objstore.Dir
	match  string
	broken atomic.Bool
	// unreadable, when set, fails every read of that key.
	unreadable atomic.Pointer[string]
}

var errInjected = errors.New("injected storage failure")

func (b *flakyBucket) Put(ctx context.Context, key string, data []byte) error {
	if b.broken.Load() && strings.Contains(key, b.match) {
		return errInjected
	}
	return b.Dir.Put(ctx, key, data)
}

func (b *flakyBucket) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	if k := b.unreadable.Load(); k != nil && *k == key {
		return nil, "", errInjected
	}
	return b.Dir.GetVersion(ctx, key)
}

func (b *flakyBucket) Get(ctx context.Context, key string) ([]byte, error) {
	if k := b.unreadable.Load(); k != nil && *k == key {
		return nil, errInjected
	}
	return b.Dir.Get(ctx, key)
}

type env struct {
	t       *testing.T
	brokers []string
	bucket  *flakyBucket
	cl      *kgo.Client
	reg     *deploy.Registry
	engine  *processors.Engine
}

func newEnv(t *testing.T) *env {
	return newEnvWith(t, func(ctx context.Context, reg *deploy.Registry) error {
		_, err1 := reg.CreateTable(ctx, deploy.Table{Name: "t", Schema: *schemas.LogSchema(), FileAge: deploy.Duration(200 * time.Millisecond)})
		_, err2 := reg.CreatePipeline(ctx, deploy.Pipeline{Name: "p", Stream: "s", Table: "t", BatchSize: 10, BatchWindow: deploy.Duration(20 * time.Millisecond)})
		return errors.Join(err1, err2)
	})
}

// newEnvWith starts kfake, a registry with stream s (4 partitions), lets
// setup create table t and pipeline p, and runs an engine.
func newEnvWith(t *testing.T, setup func(ctx context.Context, reg *deploy.Registry) error) *env {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dir, err := objstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, bucket: &flakyBucket{Dir: dir, match: "/s-2-"}, brokers: c.ListenAddrs()}
	e.cl, err = kafkax.NewClient(c.ListenAddrs(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	ctx := t.Context()
	e.reg, err = deploy.Open(ctx, e.bucket, func(ctx context.Context, topic string, n int32, ret time.Duration) error {
		return kafkax.EnsureTopic(ctx, e.cl, topic, n, ret)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.CreateStream(ctx, deploy.Stream{Name: "s", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if err := setup(ctx, e.reg); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.engine = processors.NewEngine(e.reg, e.bucket, c.ListenAddrs(), log)
	e.engine.FunctionCache = t.TempDir()
	e.engine.AllowExec = true
	if e.engine.Logs, err = fnlog.Open(ctx, c.ListenAddrs(), log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.engine.Logs.Close)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.engine.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// produce writes n records to each of the 4 partitions.
func (e *env) produce(n int) {
	e.produceWith(n, func(p int32, i int) string {
		return fmt.Sprintf(`{"message":"p%d-%d","ts":"2026-11-22T10:00:%02dZ"}`, p, i, i%60)
	})
}

// produceWith writes n records, value(p, i), to each of the 4 partitions.
func (e *env) produceWith(n int, value func(p int32, i int) string) {
	var recs []*kgo.Record
	for p := range int32(4) {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: "s", Partition: p, Value: []byte(value(p, i))})
		}
	}
	if err := e.cl.ProduceSync(e.t.Context(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// rows counts the rows in the table's committed files of one partition.
func (e *env) rows(partition int) int64 {
	var n int64
	for _, key := range e.committedFiles("t") {
		if !strings.Contains(key, fmt.Sprintf("/s-%d-", partition)) {
			continue
		}
		f, err := file.OpenParquetFile(e.bucket.Path(key), false)
		if err != nil {
			e.t.Fatalf("open %s: %v", key, err)
		}
		n += f.NumRows()
		f.Close()
	}
	return n
}

// committedFiles lists the files the manifests of table's sources list
// (what a query reads), sorted.
func (e *env) committedFiles(table string) []string {
	var out []string
	for _, src := range e.reg.TableSources(table) {
		p, err := sink.LoadProgress(context.Background(), e.bucket, src.Pipeline, src.Stream, src.Partition)
		if err != nil || p == nil || p.Manifest == nil {
			continue
		}
		files, err := p.Manifest.AllFiles(context.Background(), e.bucket.Get)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, f := range files {
			out = append(out, f.Key)
		}
	}
	slices.Sort(out)
	return out
}

func (e *env) committed(partition int32) int64 {
	offs, err := kadm.NewClient(e.cl).FetchOffsets(e.t.Context(), "sluice-pipeline-p")
	if err != nil {
		e.t.Fatal(err)
	}
	o, ok := offs.Lookup("s", partition)
	if !ok {
		return -1
	}
	return o.At
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	// Generous: under the race detector on a busy 2-core machine, compiling
	// a wasm module alone can take tens of seconds.
	deadline := time.Now().Add(e2e.Scaled(2 * time.Minute))
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) status(partition int32) processors.PartitionStatus {
	st, err := e.engine.Status(e.t.Context(), "p")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		if s.Partition == partition {
			return s
		}
	}
	return processors.PartitionStatus{}
}

// TestStuckPartitionDoesNotBlockOthers checks the retry, independence and
// commit-after-durable contracts: while partition 2 cannot write, the other
// partitions flow, partition 2 shows retrying with the error and commits
// nothing; once storage heals it catches up, and every record is in the
// table exactly once.
func TestStuckPartitionDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t)
	e.bucket.broken.Store(true)
	e.produce(100)
	for _, p := range []int{0, 1, 3} {
		waitFor(t, fmt.Sprintf("partition %d's 100 rows", p), func() bool { return e.rows(p) == 100 })
	}
	waitFor(t, "partition 2 to show retrying", func() bool {
		s := e.status(2)
		return s.State == processors.StateRetrying && s.Attempts >= 2 && strings.Contains(s.LastError, errInjected.Error())
	})
	if n := e.rows(2); n != 0 {
		t.Fatalf("partition 2 has %d rows while its storage is broken", n)
	}
	if c := e.committed(2); c > 0 {
		t.Fatalf("partition 2 committed offset %d before its rows were durable", c)
	}
	waitFor(t, "healthy partitions to commit", func() bool { return e.committed(0) == 100 && e.committed(3) == 100 })

	e.bucket.broken.Store(false)
	e.produce(50)
	for p := range 4 {
		waitFor(t, fmt.Sprintf("partition %d's 150 rows", p), func() bool { return e.rows(p) == 150 })
	}
	waitFor(t, "partition 2 to run and commit again", func() bool {
		return e.status(2).State == processors.StateRunning && e.committed(2) == 150
	})
	time.Sleep(500 * time.Millisecond) // any stray duplicate flush would land by now
	for p := range 4 {
		if n := e.rows(p); n != 150 {
			t.Fatalf("partition %d has %d rows, want exactly 150", p, n)
		}
	}
}

// TestPartitionThatCannotOpenShowsRetrying: while partition 1's progress
// object cannot be read, status shows it retrying with the error and its
// true lag (from the group's commit), and the others of its rebalance as
// waiting for it; once the store heals, all run and every record is written.
func TestPartitionThatCannotOpenShowsRetrying(t *testing.T) {
	e := newEnvWith(t, func(ctx context.Context, reg *deploy.Registry) error {
		_, err := reg.CreateTable(ctx, deploy.Table{Name: "t", Schema: *schemas.LogSchema(), FileAge: deploy.Duration(200 * time.Millisecond)})
		return err
	})
	key := "_sluice/progress/p/s/1.json"
	e.bucket.unreadable.Store(&key)
	e.produce(30)
	p := deploy.Pipeline{Name: "p", Stream: "s", Table: "t", BatchSize: 10, BatchWindow: deploy.Duration(20 * time.Millisecond)}
	if _, err := e.reg.CreatePipeline(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partition 1 retrying with its error and lag", func() bool {
		s := e.status(1)
		return s.State == processors.StateRetrying && s.Attempts >= 2 && strings.Contains(s.LastError, errInjected.Error()) &&
			s.Lag == 30 && s.EndOffset == 30
	})
	waitFor(t, "partition 0 waiting for partition 1", func() bool {
		s := e.status(0)
		return s.State == processors.StateRetrying && strings.Contains(s.LastError, "waiting for partition(s) [1]")
	})
	e.bucket.unreadable.Store(nil)
	for p := range 4 {
		waitFor(t, fmt.Sprintf("partition %d's 30 rows", p), func() bool { return e.rows(p) == 30 })
	}
	waitFor(t, "partition 1 running with no lag", func() bool {
		s := e.status(1)
		return s.State == processors.StateRunning && s.Lag == 0
	})
}

// TestPauseDrainsAndResume: pausing writes and commits what was consumed,
// then takes nothing more; resuming continues from the progress records.
func TestPauseDrainsAndResume(t *testing.T) {
	e := newEnv(t)
	e.produce(20)
	for p := range 4 {
		waitFor(t, fmt.Sprintf("partition %d's 20 rows", p), func() bool { return e.rows(p) == 20 })
	}
	if _, err := e.reg.SetPaused(t.Context(), "p", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every partition to show paused", func() bool {
		st, err := e.engine.Status(t.Context(), "p")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.State != processors.StatePaused || s.Committed != 20 {
				return false
			}
		}
		return len(st) == 4
	})
	e.produce(5)
	time.Sleep(time.Second) // well past the 200ms file age: a running pipeline would have written
	if n := e.rows(0); n != 20 {
		t.Fatalf("paused pipeline wrote: partition 0 has %d rows", n)
	}
	st, _ := e.engine.Status(t.Context(), "p")
	if st[0].Lag != 5 || st[0].EndOffset != 25 {
		t.Fatalf("paused status: %+v", st[0])
	}
	if _, err := e.reg.SetPaused(t.Context(), "p", false); err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		waitFor(t, fmt.Sprintf("partition %d's 25 rows after resume", p), func() bool { return e.rows(p) == 25 })
	}
}
