package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/s3test"
)

// TestServeApacheKafkaAndS3 is the integration test against the real
// components of a production deployment: `sluice serve` with all roles on an
// Apache Kafka broker (KRaft, jars from Maven Central, see internal/kafkatest)
// and tables on an S3 server (versitygw). Records are sent over HTTP while
// the worker is SIGKILLed and restarted; every record lands once. The
// broker is also killed and restarted once, and nothing acknowledged is lost.
func TestServeApacheKafkaAndS3(t *testing.T) {
	k := kafkatest.Start(t)
	srv := s3test.StartServer(t)
	data := t.TempDir()
	serve := func() *e2e.Server {
		return e2e.Serve(t, data, srv.Env(), "--brokers", k.Addr, "--storage", srv.URL(srv.Bucket),
			"--provision-defaults", "--worker-id", "w1", "--session-timeout", "10s")
	}
	s := serve()
	createCrashPipeline(t, s)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	const rounds, per = 4, 5000
	for round := range rounds {
		if round > 0 {
			s = serve()
		}
		sendCrashRecords(t, s, round*per, per)
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		s.Kill()
		if round == 1 && !k.External() {
			k.Stop() // the broker too: acks=all records survive its restart
			k.Start()
		}
	}
	s = serve()
	s.WaitCount("select count(*) from crash", rounds*per, 3*time.Minute)
	r, err := s.Query("select count(distinct (_partition, _offset)), count(distinct attrs->>'id') from crash")
	if err != nil || fmt.Sprint(r.Rows) != fmt.Sprintf("[[%d %d]]", rounds*per, rounds*per) {
		t.Fatalf("distinct positions and ids: %v, %v", r.Rows, err)
	}
	// The default pipeline works on Apache Kafka too.
	putHTTP(t, s, logLines("kafka", 1000))
	s.WaitCount("select count(*) from logs", 1000, time.Minute)
	s.Stop()
}
