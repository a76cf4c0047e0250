package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestLoadFigure is the README's load figure, run by hand (it takes
// SLUICE_LOAD, e.g. 5m): 4 clients send NDJSON batches of 1,000 log records
// as fast as the server takes them while a query runs every second, with
// compaction every 30 s. It prints ingest throughput, ingest and query
// latency percentiles, and RSS over time, and fails if RSS ever passes the
// sum of the memory flags plus the documented overhead.
func TestLoadFigure(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SLUICE_LOAD"))
	if err != nil {
		t.Skip("set SLUICE_LOAD=5m to run the load figure")
	}
	// --query-memory 512MB + --query-concurrency 8 × --query-result-bytes
	// 16MiB (×2 encoding) + --ingest-memory 256MiB + --memory-budget 256MiB
	// + --function-memory (no functions here) + 150 MiB overhead.
	flags := []string{"--query-memory", "512MB", "--query-result-bytes", "16MiB", "--ingest-memory", "256MiB",
		"--memory-budget", "256MiB", "--compact-interval", "30s"}
	const bound = 512<<20 + 8*16<<20*2 + 256<<20 + 256<<20 + 150<<20
	s := e2e.Up(t, t.TempDir(), flags...)
	var batch bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&batch, `{"level":"info","service":"load","host":"h%d","message":"request served in %d ms","path":"/v1/x","status":200}`+"\n", i%16, i)
	}
	body := batch.Bytes()
	stop := make(chan struct{})
	var sent, refused atomic.Int64
	var mu sync.Mutex
	var ingestLat, queryLat []time.Duration
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				resp, err := s.Do("POST", "/v1/streams/logs/records", "application/x-ndjson", body, e2e.AdminKey)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					sent.Add(1000)
				} else {
					refused.Add(1)
				}
				mu.Lock()
				ingestLat = append(ingestLat, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	var rss []int64
	begin := time.Now()
	tick := time.NewTicker(time.Second)
	for time.Since(begin) < d {
		<-tick.C
		start := time.Now()
		if _, err := s.Query("select level, count(*), max(ts) from logs where ts >= now() - interval 1 minute group by level"); err != nil {
			t.Errorf("query: %v", err)
		}
		queryLat = append(queryLat, time.Since(start))
		rss = append(rss, s.RSS())
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(begin)
	pct := func(l []time.Duration, p float64) time.Duration {
		slices.Sort(l)
		return l[int(float64(len(l)-1)*p)].Round(time.Millisecond)
	}
	peak := slices.Max(rss)
	t.Logf("%s: %d records (%.0f rec/s), %d requests refused (503), ingest latency p50 %s p99 %s, query p50 %s p99 %s",
		elapsed.Round(time.Second), sent.Load(), float64(sent.Load())/elapsed.Seconds(), refused.Load(),
		pct(ingestLat, 0.5), pct(ingestLat, 0.99), pct(queryLat, 0.5), pct(queryLat, 0.99))
	var line bytes.Buffer
	for i := 0; i < len(rss); i += max(len(rss)/10, 1) {
		fmt.Fprintf(&line, " %ds:%dMiB", i, rss[i]>>20)
	}
	t.Logf("RSS over time:%s; peak %d MiB (peak VmHWM %d MiB), bound %d MiB", line.String(), peak>>20, s.PeakRSS()>>20, int64(bound)>>20)
	if s.PeakRSS() > bound {
		t.Fatalf("peak RSS %d MiB over the flags' sum plus overhead, %d MiB", s.PeakRSS()>>20, int64(bound)>>20)
	}
}
