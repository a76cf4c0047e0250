package kafkax

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestEmbeddedApiVersionsFeaturesForOldClients: ApiVersions answers before
// v4 list no supported feature of minimum version 0 (Java clients before
// 3.8 refuse them, KIP-1022); v4 answers list every feature kfake has,
// those included (if kfake stops listing any of minimum 0, this part of
// compatConn can go).
func TestEmbeddedApiVersionsFeaturesForOldClients(t *testing.T) {
	e, err := StartEmbedded(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	zeroes := func(r *kmsg.ApiVersionsResponse) (n int) {
		for _, f := range r.SupportedFeatures {
			if f.MinVersion < 1 {
				n++
			}
		}
		return n
	}
	v4 := rawApiVersions(t, e.Addr(), 4)
	if zeroes(v4) == 0 {
		t.Fatalf("v4 lists no feature of minimum 0 (%+v): kfake changed, see compatConn", v4.SupportedFeatures)
	}
	v3 := rawApiVersions(t, e.Addr(), 3) // the first version with features
	if n := zeroes(v3); n != 0 {
		t.Fatalf("v3 lists %d features of minimum 0: %+v", n, v3.SupportedFeatures)
	}
	if len(v3.SupportedFeatures) != len(v4.SupportedFeatures)-zeroes(v4) || len(v3.ApiKeys) != len(v4.ApiKeys) {
		t.Fatalf("v3: %d features and %d keys, want %d and %d", len(v3.SupportedFeatures), len(v3.ApiKeys),
			len(v4.SupportedFeatures)-zeroes(v4), len(v4.ApiKeys))
	}
}

// TestEmbeddedDescribeTopicPartitionsELR: DescribeTopicPartitions answers
// carry empty, not null, EligibleLeaderReplicas and LastKnownELR lists
// (Java's Admin.describeTopics dereferences them), and the rest as kfake
// answered it.
func TestEmbeddedDescribeTopicPartitionsELR(t *testing.T) {
	e, err := StartEmbedded(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl := testClient(t, e.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopic(ctx, cl, "elr", 3, 0); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
	rt.Topic = "elr"
	req.Topics = append(req.Topics, rt)
	req.ResponsePartitionLimit = 100
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != 3 {
		t.Fatalf("topics %+v, want elr with 3 partitions", resp.Topics)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.EligibleLeaderReplicas == nil || p.LastKnownELR == nil {
			t.Fatalf("partition %d: EligibleLeaderReplicas %v, LastKnownELR %v: want empty lists, not null",
				p.Partition, p.EligibleLeaderReplicas, p.LastKnownELR)
		}
		if p.LeaderID < 0 || len(p.Replicas) != 1 || len(p.ISR) != 1 {
			t.Fatalf("partition %+v: leader or replicas lost", p)
		}
	}
}

func TestTaggedFieldsLen(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want int
	}{
		{[]byte{0, 9, 9}, 1},
		{[]byte{1, 5, 2, 0xa, 0xb, 9}, 5}, // one tag (5) of 2 bytes
		{[]byte{2, 5, 0, 6, 1, 0xa}, 6},
		{[]byte{1, 5, 3, 0xa}, -1}, // tag longer than the body
		{[]byte{}, -1},
	} {
		if got := taggedFieldsLen(c.b); got != c.want {
			t.Errorf("taggedFieldsLen(%x) = %d, want %d", c.b, got, c.want)
		}
	}
}
