package kafkatest_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const records = 1000

// TestProduceConsumeRestart starts a broker, creates a 4-partition topic,
// produces 1000 records, consumes and commits them in a consumer group, then
// kills and restarts the broker and checks that records and commits survive.
func TestProduceConsumeRestart(t *testing.T) {
	start := time.Now()
	b := kafkatest.Start(t)
	t.Logf("broker %s ready in %s", b.Addr, time.Since(start).Round(time.Millisecond))
	if !b.External() {
		t.Logf("broker command: %s", b.CommandLine())
	}
	if !b.External() && !strings.HasPrefix(b.Addr, "127.0.0.1:") {
		t.Fatalf("broker address %s is not on loopback", b.Addr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	adm := b.Admin(t)

	// A 4-partition topic, made with kadm.
	topic := b.NewTopic(t, 4)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics[topic].Partitions); n != 4 {
		t.Fatalf("topic %s has %d partitions, want 4", topic, n)
	}
	// auto.create.topics.enable=false: a metadata request does not create one.
	if !b.External() {
		md, err := adm.Metadata(ctx, "no-such-topic")
		if err != nil {
			t.Fatal(err)
		}
		if md.Topics["no-such-topic"].Err == nil {
			t.Fatal("no-such-topic was created automatically")
		}
	}

	produce(ctx, t, b, topic, 0, records)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			t.Errorf("partition %d got no record", o.Partition)
		}
		total += o.Offset
	})
	if total != records {
		t.Fatalf("end offsets add up to %d, want %d", total, records)
	}

	group := topic + "-group"
	consume(ctx, t, b, topic, group, 0, records)
	checkCommitted(ctx, t, adm, group, records)

	if b.External() {
		t.Skip("the rest kills and restarts the broker")
	}
	b.Stop()
	if conn, err := net.DialTimeout("tcp", b.Addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("the broker still answers after Stop")
	}
	b.Stop() // stopping a stopped broker is a no-op
	start = time.Now()
	b.Start()
	t.Logf("broker restarted in %s", time.Since(start).Round(time.Millisecond))

	// The records and the group's commits are still there: a new group
	// reads all 1000, the old one resumes after them.
	checkCommitted(ctx, t, adm, group, records)
	consume(ctx, t, b, topic, group+"-2", 0, records)
	produce(ctx, t, b, topic, records, 10)
	consume(ctx, t, b, topic, group, records, 10)
	checkCommitted(ctx, t, adm, group, records+10)
}

// produce writes records first..first+n-1, keyed k<i> with value v<i>.
func produce(ctx context.Context, t *testing.T, b *kafkatest.Broker, topic string, first, n int) {
	t.Helper()
	cl := b.Client(t, kgo.DefaultProduceTopic(topic))
	var rs []*kgo.Record
	for i := first; i < first+n; i++ {
		rs = append(rs, &kgo.Record{Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i))})
	}
	start := time.Now()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	t.Logf("produced %d records in %s", n, time.Since(start).Round(time.Millisecond))
}

// consume reads records in group until it has records first..first+n-1,
// each once, and commits them.
func consume(ctx context.Context, t *testing.T, b *kafkatest.Broker, topic, group string, first, n int) {
	t.Helper()
	cl := b.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close() // leaves the group now, not at the end of the test
	start := time.Now()
	seen := map[int]bool{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records in group %s: %v", len(seen), n, group, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			i, err := strconv.Atoi(strings.TrimPrefix(string(r.Value), "v"))
			if err != nil || string(r.Key) != "k"+strconv.Itoa(i) {
				t.Fatalf("record %q=%q", r.Key, r.Value)
			}
			if i < first || i >= first+n || seen[i] {
				t.Fatalf("unexpected record %d (want %d..%d, each once)", i, first, first+n-1)
			}
			seen[i] = true
		})
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	t.Logf("consumed and committed %d records in group %s in %s", n, group, time.Since(start).Round(time.Millisecond))
}

// checkCommitted checks that group's committed offsets add up to want.
func checkCommitted(ctx context.Context, t *testing.T, adm *kadm.Client, group string, want int64) {
	t.Helper()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := offs.Error(); err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != want {
		t.Fatalf("group %s committed offsets add up to %d, want %d", group, total, want)
	}
}

// TestMissingLibs checks the failure without the jars: a message that says
// to run scripts/kafka-server install, or a skip with SLUICE_SKIP_KAFKA=1.
func TestMissingLibs(t *testing.T) {
	t.Setenv(kafkatest.EnvCache, t.TempDir())
	t.Setenv(kafkatest.EnvBrokers, "")
	t.Setenv(kafkatest.EnvSkip, "")
	if _, err := kafkatest.FindLibs(); err == nil || !strings.Contains(err.Error(), "scripts/kafka-server install") {
		t.Fatalf("FindLibs: %v", err)
	}
	if tb := startFake(); !tb.failed || !strings.Contains(tb.msg, "scripts/kafka-server install") {
		t.Fatalf("without the jars: failed %v, %q", tb.failed, tb.msg)
	}
	t.Setenv(kafkatest.EnvSkip, "1")
	if tb := startFake(); !tb.skipped || tb.failed || !strings.Contains(tb.msg, "scripts/kafka-server install") {
		t.Fatalf("without the jars, %s=1: skipped %v, failed %v, %q", kafkatest.EnvSkip, tb.skipped, tb.failed, tb.msg)
	}
}

// fakeTB records how kafkatest.Start gives up.
type fakeTB struct {
	testing.TB
	msg             string
	failed, skipped bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func startFake() *fakeTB {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		kafkatest.Start(tb)
	}()
	<-done
	return tb
}
