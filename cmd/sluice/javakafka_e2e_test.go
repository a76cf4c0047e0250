package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// javaClientVersions are the org.apache.kafka:kafka-clients releases
// TestUpJavaKafkaClients runs: the last 3.x before KIP-1022 (which chokes
// on a supported feature of minimum version 0) and a 4.x that describes
// topics with DescribeTopicPartitions. Also in scripts/javakafka.
var javaClientVersions = []string{"3.7.2", "4.1.1"}

// TestUpJavaKafkaClients: Java's kafka-clients describe a topic (Admin),
// produce idempotently and consume in a group against `sluice up`, logged in
// as a key with SASL SCRAM-SHA-256, both over plaintext and over TLS. The
// clients are built by scripts/javakafka (see its header), whose directory
// is $SLUICE_JAVAKAFKA; scripts/test sets it and SLUICE_REQUIRE_JAVA_CLIENTS=1,
// so in CI this test cannot be skipped silently.
func TestUpJavaKafkaClients(t *testing.T) {
	dir := os.Getenv("SLUICE_JAVAKAFKA")
	java, err := exec.LookPath("java")
	if dir == "" || err != nil {
		if os.Getenv("SLUICE_REQUIRE_JAVA_CLIENTS") != "" {
			t.Fatalf("no Java Kafka clients (java: %v, SLUICE_JAVAKAFKA=%q) but SLUICE_REQUIRE_JAVA_CLIENTS is set", err, dir)
		}
		t.Skip("no Java Kafka clients: run SLUICE_JAVAKAFKA=$(scripts/javakafka install) go test ...")
	}
	cert, certKey := e2e.SelfSignedCert(t)
	servers := map[string]*e2e.Server{
		"sasl":     e2e.Up(t, t.TempDir()),
		"sasl+tls": e2e.Up(t, t.TempDir(), "--tls-cert", cert, "--tls-key", certKey),
	}
	for name, s := range servers {
		for _, v := range javaClientVersions {
			t.Run(name+"/"+v, func(t *testing.T) {
				stream := "java" + strings.NewReplacer(".", "").Replace(v)
				cli(t, s, "stream", "create", stream, "--partitions", "3")
				args := []string{"-cp", filepath.Join(dir, v, "lib", "*"), "dev.sluice.javakafka.Main",
					s.KafkaAddr, stream, "200", "group-" + stream, auth.IDOf(e2e.AdminKey), e2e.AdminKey}
				if name == "sasl+tls" {
					args = append(args, cert)
				}
				ctx, cancel := context.WithTimeout(t.Context(), e2e.Scaled(3*time.Minute))
				defer cancel()
				out, err := exec.CommandContext(ctx, java, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("kafka-clients %s: %v\n%s", v, err, out)
				}
				for _, want := range []string{"describe " + stream + " partitions=3", "produced 200", "distinct=200"} {
					if !strings.Contains(string(out), want) {
						t.Fatalf("kafka-clients %s printed no %q:\n%s", v, want, out)
					}
				}
			})
		}
	}
}
