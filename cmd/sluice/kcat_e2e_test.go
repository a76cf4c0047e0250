package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestUpKcat produces with kcat (librdkafka), the tool operators reach for,
// and checks that keyed records land in the same partition as the same keys
// sent over HTTP (with librdkafka's Java-compatible murmur2 partitioner).
// scripts/test installs kcat from Debian's packages and sets
// SLUICE_REQUIRE_KCAT=1, so in CI this test cannot be skipped silently.
func TestUpKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_KCAT") != "" {
			t.Fatal("kcat is not installed but SLUICE_REQUIRE_KCAT is set")
		}
		t.Skip("kcat not installed (apt-get install kcat); scripts/test installs it")
	}
	s := e2e.Up(t, t.TempDir())

	keys := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	var lines bytes.Buffer
	for i := range 200 {
		k := keys[i%len(keys)]
		fmt.Fprintf(&lines, "%s\t{\"service\":\"kcat\",\"user\":%q,\"message\":\"m%d\"}\n", k, k, i)
	}
	cmd := exec.CommandContext(t.Context(), kcat, "-b", s.KafkaAddr, "-t", "logs", "-P", "-K", "\t",
		"-X", "partitioner=murmur2_random", "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-256",
		"-X", "sasl.username="+auth.IDOf(e2e.AdminKey), "-X", "sasl.password="+e2e.AdminKey)
	cmd.Stdin = &lines
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	s.WaitCount("select count(*) from logs where service = 'kcat'", 200, 60*time.Second)

	// The same keys over HTTP go to the same partitions.
	var body bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&body, "{\"service\":\"http\",\"user\":%q}\n", k)
	}
	var resp ingest.Response
	if status, b := s.Post("/v1/streams/logs/records?key=user", "application/x-ndjson", body.Bytes(), &resp); status != 200 {
		t.Fatalf("ingest: %d %s", status, b)
	}
	r, err := s.Query("select attrs->>'user', min(_partition), max(_partition) from logs where service = 'kcat' group by 1")
	if err != nil {
		t.Fatal(err)
	}
	kafkaPart := map[string]float64{}
	for _, row := range r.Rows {
		if row[1] != row[2] {
			t.Fatalf("key %v spread over partitions %v..%v", row[0], row[1], row[2])
		}
		kafkaPart[row[0].(string)] = row[1].(float64)
	}
	for i, k := range keys {
		if got := float64(*resp.Records[i].Partition); got != kafkaPart[k] {
			t.Errorf("key %q: HTTP put it in partition %v, kcat in %v", k, got, kafkaPart[k])
		}
	}
}
