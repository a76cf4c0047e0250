// Package kafkax holds the Kafka plumbing shared by the stages: the embedded
// broker that `sluice up` runs, client construction, and topic management.
package kafkax

import (
	"fmt"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake) that
// persists its log and consumer-group state to a directory and listens on a
// real TCP port, so any Kafka client can produce to and consume from it.
type Embedded struct {
	cluster *kfake.Cluster
	addr    string
}

// RetentionCheckMs is how often the embedded broker applies topic retention
// (log.cleaner.backoff.ms). Kafka checks every 5 minutes by default; kfake
// every hour unless told.
const RetentionCheckMs = 60_000

// StartEmbedded starts the broker on listen (host:port; port 0 picks a free
// one) with its data in dir.
func StartEmbedded(dir, listen string) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create Kafka data directory %q: %w", dir, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for Kafka clients on %s (change --kafka-listen): %w", listen, err)
	}
	used := false
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DataDir(dir),
		kfake.ClusterID("sluice-embedded"),
		kfake.ListenFn(func(string, string) (net.Listener, error) {
			if used {
				return nil, fmt.Errorf("BUG: embedded broker asked for a second listener")
			}
			used = true
			return ln, nil
		}),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms": fmt.Sprint(RetentionCheckMs),
		}),
	)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot start embedded Kafka broker in %q: %w", dir, err)
	}
	return &Embedded{cluster: c, addr: ln.Addr().String()}, nil
}

// Addr is the broker's host:port.
func (e *Embedded) Addr() string { return e.addr }

// Cluster exposes the kfake cluster for tests (fault injection, retention).
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker; its state is already on disk.
func (e *Embedded) Close() { e.cluster.Close() }
