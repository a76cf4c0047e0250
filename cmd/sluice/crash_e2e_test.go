package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/e2e"
	"github.com/sluice-dev/sluice/internal/s3test"
	"github.com/sluice-dev/sluice/schemas"
)

// crashRounds and crashRecords size TestCrashLosesNothing: 16 rounds of two
// kills each while 200,000 records flow.
const (
	crashRounds  = 16
	crashRecords = 200_000
)

// failpoints are the instants of the flush protocol the test kills at, on
// top of kills at random moments: after the pending progress record, after
// an uploaded file (before the rest and the final progress), and after the
// final progress (before the Kafka commit).
var failpoints = []string{"sink.after-pending", "sink.after-file", "sink.after-progress"}

// TestCrashLosesNothing kills `sluice up` with SIGKILL again and again while
// records flow through a pipeline that flushes often, and restarts it on the
// same data directory. Each round sends a share of the records to a plain
// server (with the pipeline paused, so they pile up), resumes the pipeline
// and kills the server at a random moment while it works through them, then
// restarts it with a failpoint that kills it at a chosen instant of the flush
// protocol while it works through the rest. In the end the table holds every record exactly once.
// SLUICE_CRASH_QUICK=1 runs 4 rounds of 10,000 records instead.
func TestCrashLosesNothing(t *testing.T) { runCrash(t, nil) }

// TestCrashLosesNothingS3 is the same against a real S3 server (versitygw,
// see internal/s3test), with `sluice up --storage s3://...`.
func TestCrashLosesNothingS3(t *testing.T) {
	srv := s3test.StartServer(t)
	runCrash(t, srv.Env(), "--storage", srv.URL(srv.Bucket))
}

// runCrash runs the crash test with extra environment and flags for every
// `sluice up`.
func runCrash(t *testing.T, env []string, flags ...string) {
	rounds, total := crashRounds, crashRecords
	if os.Getenv("SLUICE_CRASH_QUICK") != "" {
		rounds, total = 4, 10_000
	}
	perRound := total / rounds
	data := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	up := func(more ...string) *e2e.Server { return e2e.UpEnv(t, data, append(env, more...), flags...) }
	s := up()
	createCrashPipeline(t, s)
	kills, reached := 0, 0
	for round := range rounds {
		if round > 0 {
			s = up()
		}
		// Paused while the records are sent, so that a backlog builds up
		// and the kill lands while the pipeline is working through it.
		setPaused(t, s, true)
		sendCrashRecords(t, s, round*perRound, perRound)
		setPaused(t, s, false)
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		s.Kill()
		kills++

		fp := fmt.Sprintf("%s:%d", failpoints[round%len(failpoints)], 1+rng.IntN(3))
		s = up("SLUICE_FAILPOINT=" + fp)
		if s.Exited(10 * time.Second) {
			reached++
		} else {
			t.Logf("round %d: failpoint %s not reached in 10s; killing at a random moment instead", round, fp)
		}
		s.Kill()
		kills++
	}
	t.Logf("%d kills, %d of them at failpoints", kills, reached)
	if reached < rounds/2 {
		t.Fatalf("only %d of %d failpoint kills happened: the test is not exercising the flush protocol", reached, rounds)
	}

	s = up()
	s.WaitCount("select count(*) from crash", int64(total), 3*time.Minute)
	r, err := s.Query("select count(distinct (_partition, _offset)), count(distinct attrs->>'id'), min((attrs->>'id')::int), max((attrs->>'id')::int) from crash")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]any{float64(total), float64(total), float64(0), float64(total - 1)})
	if got := fmt.Sprint(r.Rows[0]); got != want {
		t.Fatalf("distinct positions, distinct ids, min id, max id = %s; want %s", got, want)
	}
	s.Stop()
}

func createCrashPipeline(t *testing.T, s *e2e.Server) {
	t.Helper()
	for _, c := range []struct {
		path string
		body any
	}{
		{"/v1/streams", deploy.Stream{Name: "crash", Partitions: 4}},
		{"/v1/tables", deploy.Table{Name: "crash", Schema: *schemas.LogSchema(), FileAge: deploy.Duration(300 * time.Millisecond)}},
		{"/v1/pipelines", deploy.Pipeline{Name: "crash", Stream: "crash", Table: "crash", BatchSize: 500, BatchWindow: deploy.Duration(50 * time.Millisecond)}},
	} {
		body, _ := json.Marshal(c.body)
		if status, out := s.Post(c.path, "application/json", body, nil); status != 201 {
			t.Fatalf("POST %s: %d %s", c.path, status, out)
		}
	}
}

func setPaused(t *testing.T, s *e2e.Server, paused bool) {
	t.Helper()
	verb := map[bool]string{true: "pause", false: "resume"}[paused]
	if status, out := s.Post("/v1/pipelines/crash/"+verb, "application/json", nil, nil); status != 200 {
		t.Fatalf("%s: %d %s", verb, status, out)
	}
}

// sendCrashRecords sends records first..first+n-1 in requests of 2000, keyed
// by id, and checks every one was acknowledged.
func sendCrashRecords(t *testing.T, s *e2e.Server, first, n int) {
	t.Helper()
	for start := first; start < first+n; start += 2000 {
		var b bytes.Buffer
		for id := start; id < min(start+2000, first+n); id++ {
			fmt.Fprintf(&b, `{"id":%d,"level":"info","message":"crash test record %d"}`+"\n", id, id)
		}
		var resp ingest.Response
		status, body := s.Post("/v1/streams/crash/records?key=id", "application/x-ndjson", b.Bytes(), &resp)
		if status != 200 || resp.FailedRecordCount != 0 {
			t.Fatalf("ingest: %d %.300s", status, body)
		}
	}
}

// TestCrashLosesNothingWithCompaction is the crash test with compaction
// merging the table's small files every 300 ms all along.
func TestCrashLosesNothingWithCompaction(t *testing.T) {
	runCrash(t, nil, "--compact-interval", "300ms")
}

// TestCompactionNeverShowsARowTwice queries the table over and over while
// records flow in and compaction merges the small files they land in: every
// answer has each source position once, and counts never go down.
func TestCompactionNeverShowsARowTwice(t *testing.T) {
	s := e2e.Up(t, t.TempDir(), "--compact-interval", "200ms")
	createCrashPipeline(t, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			sendCrashRecords(t, s, i*1000, 1000)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	last, queries := float64(0), 0
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := s.Query("select count(*), count(distinct (_partition, _offset)) from crash")
		if err != nil {
			t.Fatal(err)
		}
		queries++
		n, distinct := r.Rows[0][0].(float64), r.Rows[0][1].(float64)
		if n != distinct || n < last {
			t.Fatalf("query %d: count %v, distinct positions %v, previous count %v", queries, n, distinct, last)
		}
		last = n
		if n == 20_000 && strings.Contains(s.Log(), "msg=compacted") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("count %v after 2 minutes; compacted: %v", n, strings.Contains(s.Log(), "msg=compacted"))
		}
	}
	<-done
	t.Logf("%d queries, each row seen once", queries)
}

// TestS3OutageLosesNothing stops the S3 server while records flow: the
// partitions show retrying with the storage error, nothing is committed, and
// once S3 is back every record lands, once.
func TestS3OutageLosesNothing(t *testing.T) {
	srv := s3test.StartServer(t)
	if srv.External() {
		t.Skip("cannot stop an external S3 server (SLUICE_TEST_S3)")
	}
	s := e2e.UpEnv(t, t.TempDir(), srv.Env(), "--storage", srv.URL(srv.Bucket))
	createCrashPipeline(t, s)
	sendCrashRecords(t, s, 0, 2000)
	s.WaitCount("select count(*) from crash", 2000, 60*time.Second)

	srv.Stop()
	sendCrashRecords(t, s, 2000, 3000)
	e2e.WaitFor(t, 60*time.Second, "a partition to show retrying", func() error {
		var st struct {
			Partitions []struct {
				State     string `json:"state"`
				LastError string `json:"last_error"`
			} `json:"partitions"`
		}
		if status, body := s.Get("/v1/pipelines/crash/status", &st); status != 200 {
			return fmt.Errorf("status %d: %s", status, body)
		}
		for _, p := range st.Partitions {
			if p.State == "retrying" && p.LastError != "" {
				return nil
			}
		}
		return fmt.Errorf("no partition retrying: %+v", st.Partitions)
	})
	srv.Start()
	s.WaitCount("select count(*) from crash", 5000, 2*time.Minute)
	if n, err := s.Count("select count(distinct attrs->>'id') from crash"); err != nil || n != 5000 {
		t.Fatalf("distinct ids after the outage: %d, %v", n, err)
	}
	s.Stop()
}
