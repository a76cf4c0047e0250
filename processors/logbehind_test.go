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

	"github.com/sluice-dev/sluice/internal/kafkax"
	"github.com/sluice-dev/sluice/processors"
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
