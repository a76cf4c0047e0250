package ingest

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKeepNewest: records of several partitions are merged newest first and
// cut to the limit.
func TestKeepNewest(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	recs := []TailRecord{
		{Partition: 0, Offset: 7, Timestamp: t0},
		{Partition: 1, Offset: 2, Timestamp: t0.Add(2 * time.Second)},
		{Partition: 0, Offset: 8, Timestamp: t0.Add(time.Second)},
		{Partition: 1, Offset: 3, Timestamp: t0.Add(3 * time.Second)},
	}
	got := keepNewest(recs, 3)
	if len(got) != 3 || got[0].Offset != 3 || got[1].Offset != 2 || got[2].Offset != 8 {
		t.Fatalf("keepNewest: %+v", got)
	}
	if got := keepNewest(recs, 0); len(got) != 0 {
		t.Fatalf("limit 0: %+v", got)
	}
}

// TestTailRecordValueLimit: a value of MaxTailValueBytes is whole, one byte
// more is cut (never inside a UTF-8 character) and marked.
func TestTailRecordValueLimit(t *testing.T) {
	at := strings.Repeat("a", MaxTailValueBytes)
	if r := tailRecord(&kgo.Record{Value: []byte(at)}); r.Truncated || r.Value != at {
		t.Fatalf("at the limit: truncated=%v len=%d", r.Truncated, len(r.Value))
	}
	over := strings.Repeat("a", MaxTailValueBytes-1) + "é" // 2 bytes across the limit
	r := tailRecord(&kgo.Record{Value: []byte(over), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}})
	if !r.Truncated || len(r.Value) != MaxTailValueBytes-1 || !utf8.ValidString(r.Value) || r.Headers["h"] != "v" {
		t.Fatalf("over the limit: truncated=%v len=%d headers=%v", r.Truncated, len(r.Value), r.Headers)
	}
}
