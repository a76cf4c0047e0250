package kafkax

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func produce(t *testing.T, addr string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := NewClient([]string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func offsets(t *testing.T, addr, topic string) (start, end int64) {
	t.Helper()
	cl, err := NewClient([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	s, err := adm.ListStartOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	e, err := adm.ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	so, _ := s.Lookup(topic, 0)
	eo, _ := e.Lookup(topic, 0)
	return so.Offset, eo.Offset
}

// TestEmbeddedPersistsAndEnforcesRetention: the embedded broker keeps its log
// across restarts on the same directory, and drops records older than the
// topic's retention so the directory does not grow without bound.
func TestEmbeddedPersistsAndEnforcesRetention(t *testing.T) {
	dir := t.TempDir()
	b, err := StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewClient([]string{b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(t.Context(), cl, "s", 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(t.Context(), cl, "s", 1, time.Hour); err != nil {
		t.Fatalf("EnsureTopic on an existing topic: %v", err)
	}
	cl.Close()
	old := time.Now().Add(-3 * time.Hour)
	produce(t, b.Addr(), &kgo.Record{Topic: "s", Value: []byte(`{"n":1}`), Timestamp: old},
		&kgo.Record{Topic: "s", Value: []byte(`{"n":2}`), Timestamp: old})
	produce(t, b.Addr(), &kgo.Record{Topic: "s", Value: []byte(`{"n":3}`)})
	b.Close()

	b, err = StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("restart on the same directory: %v", err)
	}
	defer b.Close()
	if start, end := offsets(t, b.Addr(), "s"); start != 0 || end != 3 {
		t.Fatalf("after restart: offsets %d..%d, want 0..3", start, end)
	}
	b.Cluster().ApplyRetention()
	if start, end := offsets(t, b.Addr(), "s"); start != 2 || end != 3 {
		t.Fatalf("after retention: offsets %d..%d, want 2..3 (the two 3h-old records dropped)", start, end)
	}
}
