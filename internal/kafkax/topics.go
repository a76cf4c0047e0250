package kafkax

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// NewClient returns a client for brokers with sluice's common options plus
// opts.
func NewClient(brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(MaxMessageBytes)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create Kafka client for %v: %w", brokers, err)
	}
	return cl, nil
}

// MaxMessageBytes is the largest record batch sluice produces, and the
// max.message.bytes it sets on its topics: room for the largest record
// ingest accepts (1 MiB of data, a 1 KiB key) with its headers (a dead
// letter's sluice.* headers) and the batch's framing. Kafka's defaults
// (message.max.bytes 1,048,588, and franz-go's 1,000,012-byte batches) are
// smaller than such a record, which would fail at produce time for good.
const MaxMessageBytes = 2 << 20

// EnsureTopic creates topic with partitions and retention if it does not
// exist; an existing topic gets its retention.ms set to retention. Both get
// max.message.bytes = MaxMessageBytes. It does not change an existing
// topic's partition count.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32, retention time.Duration) error {
	adm := kadm.NewClient(cl)
	ms := strconv.FormatInt(retention.Milliseconds(), 10)
	maxBytes := strconv.Itoa(MaxMessageBytes)
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"retention.ms": &ms, "max.message.bytes": &maxBytes}, topic)
	if err == nil {
		err = resp.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		_, aerr := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: &ms}, {Name: "max.message.bytes", Value: &maxBytes}}, topic)
		if aerr != nil {
			return fmt.Errorf("cannot set retention of topic %q: %w", topic, aerr)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot create topic %q with %d partitions: %w", topic, partitions, err)
	}
	return nil
}

// EndOffsets returns the high watermark of each partition of topic.
func EndOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("cannot list end offsets of topic %q: %w", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Partition] = o.Offset
		}
	})
	return out, nil
}

// GroupOwners returns, for a consumer group that reads topic, which member
// holds each partition now: its instance ID (static members) or else its
// client ID and host. A partition missing from the map is held by no one
// (no live member, or a rebalance in progress).
func GroupOwners(ctx context.Context, cl *kgo.Client, group, topic string) (map[int32]string, error) {
	adm := kadm.NewClient(cl)
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("cannot describe consumer group %q: %w", group, err)
	}
	g, ok := groups[group]
	if !ok {
		return map[int32]string{}, nil
	}
	if g.Err != nil {
		return nil, fmt.Errorf("cannot describe consumer group %q: %w", group, g.Err)
	}
	out := map[int32]string{}
	for _, m := range g.Members {
		who := m.ClientID + "@" + m.ClientHost
		if m.InstanceID != nil && *m.InstanceID != "" {
			who = *m.InstanceID
		}
		assigned, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range assigned.Topics {
			if t.Topic != topic {
				continue
			}
			for _, p := range t.Partitions {
				out[p] = who
			}
		}
	}
	return out, nil
}

// AuthOpts are the client options for a Kafka cluster that wants SASL
// (mechanism SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN; user "" for none)
// and/or TLS (tlsConfig nil for none).
func AuthOpts(mechanism, user, password string, tlsConfig *tls.Config) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if user != "" {
		switch strings.ToUpper(mechanism) {
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()))
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()))
		default:
			return nil, fmt.Errorf("SASL mechanism %q: want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", mechanism)
		}
	}
	if tlsConfig != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsConfig))
	}
	return opts, nil
}
