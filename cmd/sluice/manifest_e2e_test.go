package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/s3test"
)

// TestThreeWorkersQueriesAlwaysExact runs the README's multi-machine layout
// on Apache Kafka and S3: an ingest+query node and three workers, which
// compact every 3 s, while records flow in and queries run back to back for
// two minutes (one worker leaves and comes back meanwhile). Every answer
// holds, for each partition, exactly a prefix of its records: each offset
// and each id once, none missing below the highest. The query node, which
// runs no worker, shows every partition with its owner. At the end every
// record is in the table once.
func TestThreeWorkersQueriesAlwaysExact(t *testing.T) {
	const runFor = 2 * time.Minute
	k := kafkatest.Start(t)
	srv := s3test.StartServer(t)
	common := []string{"--brokers", k.Addr, "--storage", srv.URL(srv.Bucket), "--query-timeout", "20s", "--retire-grace", "30s"}
	api := e2e.Serve(t, t.TempDir(), srv.Env(), append(common, "--roles", "ingest,query")...)
	createCrashPipeline(t, api)
	worker := func(id string) *e2e.Server {
		return e2e.Serve(t, t.TempDir(), srv.Env(), append(common, "--roles", "worker", "--worker-id", id,
			"--session-timeout", "10s", "--compact-interval", "3s")...)
	}
	workers := []*e2e.Server{worker("w1"), worker("w2"), worker("w3")}

	var sent atomic.Int64
	stop, produced := make(chan struct{}), make(chan error, 1)
	go func() { produced <- produce(api, &sent, stop) }()

	start, queries := time.Now(), 0
	restarted := false
	for time.Since(start) < runFor {
		if !restarted && time.Since(start) > runFor/2 {
			workers[2].Stop() // its partitions move to the others at once
			workers[2], restarted = worker("w3"), true
		}
		checkPrefixes(t, api)
		queries++
	}
	close(stop)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d queries over %s, %d records", queries, runFor, sent.Load())
	e2e.WaitFor(t, 2*time.Minute, "the query node to show every partition owned", func() error {
		for _, p := range pipelineStatus(t, api, "crash").Partitions {
			if p.State != "running" || p.Worker == "" {
				return fmt.Errorf("partition %d: %s on %q (%s)", p.Partition, p.State, p.Worker, p.LastError)
			}
		}
		return nil
	})
	api.WaitCount("select count(*) from crash", sent.Load(), 3*time.Minute)
	if n, err := api.Count("select count(distinct attrs->>'id') from crash"); err != nil || n != sent.Load() {
		t.Fatalf("distinct ids at the end: %d, %v; want %d", n, err, sent.Load())
	}
	checkPrefixes(t, api)
}

// produce sends 500 records every 100 ms until stop, counting the ones
// written; ids are 0, 1, 2, ...
func produce(s *e2e.Server, sent *atomic.Int64, stop chan struct{}) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		var b bytes.Buffer
		first := sent.Load()
		for id := first; id < first+500; id++ {
			fmt.Fprintf(&b, `{"id":%d,"level":"info","message":"record %d"}`+"\n", id, id)
		}
		resp, err := s.Do("POST", "/v1/streams/crash/records?key=id", "application/x-ndjson", b.Bytes(), e2e.AdminKey)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("ingest answered %d", resp.StatusCode)
		}
		sent.Add(500)
	}
}

// checkPrefixes checks that every partition's rows are one prefix of its
// records: offsets 0..max once each, and as many distinct ids.
func checkPrefixes(t *testing.T, s *e2e.Server) {
	t.Helper()
	r, err := s.Query(`select _partition, count(*), count(distinct _offset), coalesce(min(_offset), 0), coalesce(max(_offset), -1),
		count(distinct attrs->>'id') from crash group by all order by 1`)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	for _, row := range r.Rows {
		n, offsets, lo, hi, ids := toInt(row[1]), toInt(row[2]), toInt(row[3]), toInt(row[4]), toInt(row[5])
		if n != offsets || n != ids || lo != 0 || hi != n-1 {
			t.Fatalf("partition %v: %v rows, %v offsets (%v..%v), %v ids: not one prefix of its records", row[0], n, offsets, lo, hi, ids)
		}
	}
}

func toInt(v any) int64 {
	switch v := v.(type) {
	case float64:
		return int64(v)
	case json.Number:
		n, _ := v.Int64()
		return n
	}
	return -1
}
