package processors_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/kafkax"
	"github.com/sluice-dev/sluice/processors"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// TestLogBehindTableStopsPartition: when the Kafka log restarts below what
// the table already holds (here: a brand-new broker over the same store),
// the partitions stop with an error that says what happened instead of
// silently skipping the new records.
func TestLogBehindTableStopsPartition(t *testing.T) {
	e := newEnv(t)
	e.produce(20)
	for p := range 4 {
		waitFor(t, fmt.Sprintf("partition %d's 20 rows", p), func() bool { return e.rows(p) == 20 })
	}

	fresh, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	cl, err := kafkax.NewClient(fresh.ListenAddrs(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafkax.EnsureTopic(t.Context(), cl, "s", 4, time.Hour); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for p := range int32(4) {
		for i := range 5 {
			recs = append(recs, &kgo.Record{Topic: "s", Partition: p, Value: []byte(fmt.Sprintf(`{"message":"new%d"}`, i))})
		}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	engine := processors.NewEngine(e.reg, e.bucket, fresh.ListenAddrs(), log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); engine.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "every partition stopped with the log-behind error", func() bool {
		st, err := engine.Status(t.Context(), "p")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.State != processors.StateStopped || !strings.Contains(s.LastError, "the Kafka log is behind the table") {
				return false
			}
		}
		return len(st) == 4
	})
	for p := range 4 {
		if n := e.rows(p); n != 20 {
			t.Fatalf("partition %d has %d rows", p, n)
		}
	}
}

// TestRolledBackFlushIsReadAgain: after a claim rolls back a flush (a
// pending flush of offsets 0..19 whose files never came, from a progress
// object of an older release), the records are read and written again,
// once, and the partition's manifest lists what the table holds.
func TestRolledBackFlushIsReadAgain(t *testing.T) {
	e := newEnvFromProgress(t, 7, 50, map[int32]string{
		0: `{"next":0,"epoch":1,"pending":{"next":20,"files":["tables/t/dt=2026-11-22/hour=03/s-0-0-19.parquet"]}}`,
		1: `{"next":0,"epoch":1,"pending":{"next":20,"files":["tables/t/dt=2026-11-22/hour=03/s-1-5-19.parquet"]}}`,
	})
	for p := range 4 {
		waitFor(t, fmt.Sprintf("partition %d's 50 rows", p), func() bool { return e.rows(p) == 50 })
	}
	for p := range int32(4) {
		prog, err := sink.LoadProgress(t.Context(), e.bucket, "p", "s", p)
		if err != nil || prog == nil || prog.Manifest == nil || p < 2 && prog.Epoch != 2 {
			t.Fatalf("partition %d's progress: %+v, %v", p, prog, err)
		}
	}
}

// TestCorruptProgressStopsOnlyItsPartition: a partition whose progress
// object cannot be decoded shows as stopped, with the object and what to do
// in its error, while the pipeline's other partitions are read and written.
func TestCorruptProgressStopsOnlyItsPartition(t *testing.T) {
	e := newEnvFromProgress(t, 10, 20, map[int32]string{3: "{not json"})
	for p := range 3 {
		waitFor(t, fmt.Sprintf("partition %d's 20 rows", p), func() bool { return e.rows(p) == 20 })
	}
	waitFor(t, "partition 3 stopped with the corrupt object named", func() bool {
		s := e.status(3)
		return s.State == processors.StateStopped && strings.Contains(s.LastError, "_sluice/progress/p/s/3.json") && strings.Contains(s.LastError, "delete it")
	})
	if n := e.rows(3); n != 0 {
		t.Fatalf("partition 3 wrote %d rows past a corrupt progress object", n)
	}
}

// newEnvFromProgress is newEnv whose pipeline p (batches of batchSize) starts
// from the given progress objects, by partition, with records records
// already in each partition.
func newEnvFromProgress(t *testing.T, batchSize, records int, progress map[int32]string) *env {
	e := newEnvWith(t, func(ctx context.Context, reg *deploy.Registry) error {
		_, err := reg.CreateTable(ctx, deploy.Table{Name: "t", Schema: *schemas.LogSchema(), FileAge: deploy.Duration(200 * time.Millisecond)})
		return err
	})
	for p, obj := range progress {
		if err := e.bucket.Put(t.Context(), fmt.Sprintf("_sluice/progress/p/s/%d.json", p), []byte(obj)); err != nil {
			t.Fatal(err)
		}
	}
	e.produce(records)
	p := deploy.Pipeline{Name: "p", Stream: "s", Table: "t", BatchSize: batchSize, BatchWindow: deploy.Duration(20 * time.Millisecond)}
	if _, err := e.reg.CreatePipeline(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	return e
}
