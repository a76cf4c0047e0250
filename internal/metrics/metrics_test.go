package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	w := httptest.NewRecorder()
	r.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

// TestPartitionSeriesBounded: a partition's series exist while this process
// owns it and go when it stops; the gauges come from the source.
func TestPartitionSeriesBounded(t *testing.T) {
	r := New()
	owned := true
	r.Pipelines.SetSource(Source{Partitions: func(context.Context) []Partition {
		if !owned {
			return nil
		}
		return []Partition{{Pipeline: "p", Stream: "s", Table: "t", Partition: 3, State: "retrying", Attempts: 4, LagRecords: 7,
			Oldest: time.Now().Add(-time.Minute), BufferedRows: 9}}
	}})
	r.Pipelines.PartitionStarted("p", "t", 3)
	r.Pipelines.Attempt("p", 3, time.Millisecond, 2*time.Millisecond, io.EOF)
	out := scrape(t, r)
	for _, want := range []string{
		`sluice_partition_state{partition="3",pipeline="p",state="retrying",stream="s"} 1`,
		`sluice_partition_state{partition="3",pipeline="p",state="running",stream="s"} 0`,
		`sluice_partition_attempts{partition="3",pipeline="p",stream="s"} 4`,
		`sluice_partition_lag_records{partition="3",pipeline="p",stream="s"} 7`,
		`sluice_batch_failures_total{partition="3",pipeline="p"} 1`,
		`sluice_records_dead_lettered_total{partition="3",pipeline="p"} 0`,
		`sluice_table_rows_buffered{table="t"} 9`,
		`sluice_table_compactions_total{table="t"} 0`,
		`go_goroutines `, `process_resident_memory_bytes `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if !strings.Contains(out, `sluice_partition_lag_seconds{partition="3",pipeline="p",stream="s"} 6`) { // 60.x s
		t.Errorf("lag age of a record a minute old:\n%s", out)
	}
	owned = false
	r.Pipelines.PartitionStopped("p", 3)
	if out := scrape(t, r); strings.Contains(out, `partition="3"`) {
		t.Errorf("series of a stopped partition remain:\n%s", out)
	}
}

// TestIngestWrapBoundsStreams: requests for a stream that does not exist
// are counted under UnknownStream, with their status and body bytes.
func TestIngestWrapBoundsStreams(t *testing.T) {
	r := New()
	mux := http.NewServeMux()
	mux.Handle("/v1/streams/{stream}/records", r.Ingest.Wrap(func(s string) bool { return s == "logs" },
		http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { io.ReadAll(req.Body); w.WriteHeader(404) })))
	for _, s := range []string{"logs", "made-up-1", "made-up-2"} {
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/streams/"+s+"/records", strings.NewReader("12345")))
	}
	out := scrape(t, r)
	for _, want := range []string{
		`sluice_ingest_requests_total{code="404",stream="logs"} 1`,
		`sluice_ingest_requests_total{code="404",stream="_unknown"} 2`,
		`sluice_ingest_bytes_total{code="404",stream="_unknown"} 10`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
	if strings.Contains(out, "made-up") {
		t.Error("a made-up stream name became a label")
	}
}
