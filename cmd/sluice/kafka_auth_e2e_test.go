package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestKafkaListenerKeys: the embedded broker takes the same keys over SASL
// SCRAM-SHA-256 (user: the key's id): without SASL a client gets nowhere,
// an ingest:clicks key produces to clicks and is refused logs, a revoked
// key is refused; over TLS (--tls-cert) a TLS+SCRAM client works.
func TestKafkaListenerKeys(t *testing.T) {
	cert, certKey := e2e.SelfSignedCert(t)
	s := e2e.Up(t, t.TempDir(), "--tls-cert", cert, "--tls-key", certKey)
	cli(t, s, "stream", "create", "clicks")
	pem, _ := os.ReadFile(cert)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tlsOpt := kgo.DialTLSConfig(&tls.Config{RootCAs: roots})
	produce := func(topic string, opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(s.KafkaAddr), kgo.RecordRetries(2),
			kgo.RequestRetries(2), kgo.RetryTimeout(10*time.Second))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(`{"user":"kafka"}`)}).FirstErr()
	}
	if err := produce("clicks", tlsOpt); err == nil {
		t.Fatal("a client without SASL produced")
	}
	if err := produce("clicks"); err == nil {
		t.Fatal("a client without TLS produced")
	}
	k := createKey(t, s, "--scope", "ingest:clicks")
	if err := produce("clicks", append(e2e.KafkaOpts(k.Key), tlsOpt)...); err != nil {
		t.Fatalf("ingest:clicks producing to clicks over TLS+SCRAM: %v", err)
	}
	err := produce("logs", append(e2e.KafkaOpts(k.Key), tlsOpt)...)
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("ingest:clicks producing to logs: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	cli(t, s, "key", "revoke", k.ID)
	e2e.WaitFor(t, time.Minute, "the revoked key to be refused by the broker", func() error {
		if produce("clicks", append(e2e.KafkaOpts(k.Key), tlsOpt)...) == nil {
			return errNotYet
		}
		return nil
	})
}
