package processors_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/kafkax"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/processors"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// BenchmarkDirectPipeline measures the engine end to end, once its consumer
// group has joined: 100,000 log records are produced to an in-process Kafka
// (4 partitions), consumed, converted, written as Parquet to a local
// directory and committed (records/s reported; the broker, the producer and
// the disk share the machine). The last files wait for the table's 1 s idle
// flush, which is part of the measured time.
func BenchmarkDirectPipeline(b *testing.B) {
	const n = 100_000
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kafkax.NewClient(c.ListenAddrs(), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		v := fmt.Sprintf(`{"ts":"2026-11-22T10:00:%02dZ","level":"info","service":"api","host":"h%d","message":"request %d served","status":200,"duration_ms":12.5}`, i%60, i%7, i)
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i % 1000)), Value: []byte(v)})
	}
	log := slog.New(slog.NewTextHandler(testWriter{&testing.T{}}, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		dir, err := objstore.NewDir(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		reg, err := deploy.Open(b.Context(), dir, func(context.Context, string, int32, time.Duration) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		reg.CreateTable(b.Context(), deploy.Table{Name: "t", Schema: *schemas.LogSchema(), FileAge: deploy.Duration(time.Second)})
		name, topic := fmt.Sprintf("p%d", i), fmt.Sprintf("s%d", i)
		if err := kafkax.EnsureTopic(b.Context(), cl, topic, 4, time.Hour); err != nil {
			b.Fatal(err)
		}
		reg.CreateStream(b.Context(), deploy.Stream{Name: topic, Partitions: 4})
		if _, err := reg.CreatePipeline(b.Context(), deploy.Pipeline{Name: name, Stream: topic, Table: "t", BatchSize: 500}); err != nil {
			b.Fatal(err)
		}
		e := processors.NewEngine(reg, dir, c.ListenAddrs(), log)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		for !assigned(b, e, name) {
			time.Sleep(20 * time.Millisecond)
		}
		b.StartTimer()
		for _, r := range recs {
			r.Topic, r.Partition, r.Offset = topic, 0, 0
		}
		if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		for committed(b, dir, name, topic) < n {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// assigned reports whether the engine runs all 4 partitions of pipeline.
func assigned(b *testing.B, e *processors.Engine, pipeline string) bool {
	st, err := e.Status(b.Context(), pipeline)
	if err != nil {
		return false
	}
	for _, s := range st {
		if s.State != processors.StateRunning {
			return false
		}
	}
	return len(st) == 4
}

func committed(b *testing.B, d *objstore.Dir, pipeline, stream string) int64 {
	var sum int64
	for p := range int32(4) {
		prog, err := sink.LoadProgress(context.Background(), d, pipeline, stream, p)
		if err != nil {
			b.Fatal(err)
		}
		if prog != nil && prog.Next > 0 {
			sum += prog.Next
		}
	}
	return sum
}
