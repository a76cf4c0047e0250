package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// statusOf is partition id (a metrics label) of pipeline's status.
func statusOf(t *testing.T, s *e2e.Server, pipeline, id string) deploy.PartitionStatus {
	t.Helper()
	var st struct{ Partitions []deploy.PartitionStatus }
	if code, body := s.Get("/v1/pipelines/"+pipeline+"/status", &st); code != 200 {
		t.Fatalf("pipeline status: %d %s", code, body)
	}
	for _, p := range st.Partitions {
		if strconv.Itoa(int(p.Partition)) == id {
			return p
		}
	}
	t.Fatalf("pipeline status has no partition %s: %+v", id, st.Partitions)
	return deploy.PartitionStatus{}
}

// TestMetricsPoisonPartition scrapes GET /metrics of the built binary while
// a poison record holds one partition of a pipeline retrying: that
// partition's state is retrying and its attempts and lag age grow; after the
// alias moves to a fixed version it is running again with attempts and lag
// age 0, in pipeline status too (lag_age_seconds, oldest_unprocessed, the
// CLI's LAG_AGE). Then every sluice_* metric that deploy/grafana's dashboard and
// deploy/prometheus's alert rules name is exposed by the server; a metrics
// key may scrape, an ingest key may not; and every JSON log line (--log-format
// json) about a partition carries pipeline, stream, partition and offset.
func TestMetricsPoisonPartition(t *testing.T) {
	s := e2e.Up(t, t.TempDir(), "--log-format", "json")
	wasm := buildPoison(t)
	cli(t, s, "fn", "deploy", "poison", "--runtime", "wasm", "--code", wasm, "--timeout", "10s", "--env", "FAIL_POISON=1")
	cli(t, s, "fn", "publish", "poison")
	cli(t, s, "fn", "alias", "poison", "live", "--version", "1")
	cli(t, s, "stream", "create", "orders", "--partitions", "2")
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"columns":[{"name":"message","type":"string"},{"name":"src_offset","type":"int64","not_null":true}]}`), 0o644)
	cli(t, s, "table", "create", "orders", "--schema", schema, "--file-age", "1s")
	cli(t, s, "pipeline", "create", "orders", "--stream", "orders", "--function", "poison:live", "--table", "orders", "--batch-size", "1")
	putOrders(t, s)

	// The stuck partition: retrying, with attempts and lag age growing.
	var stuck string // its partition label
	var attempts, age float64
	e2e.WaitFor(t, e2e.Scaled(60*time.Second), "a partition of orders retrying in /metrics", func() error {
		m := scrape(t, s, e2e.AdminKey)
		for _, p := range []string{"0", "1"} {
			if m.value("sluice_partition_state", "orders", p, `state="retrying"`) == 1 {
				stuck, attempts, age = p, m.value("sluice_partition_attempts", "orders", p), m.value("sluice_partition_lag_seconds", "orders", p)
				if attempts >= 1 && age > 0 {
					return nil
				}
			}
		}
		return fmt.Errorf("no partition retrying with attempts and lag age yet")
	})
	e2e.WaitFor(t, e2e.Scaled(60*time.Second), "attempts and lag age growing", func() error {
		m := scrape(t, s, e2e.AdminKey)
		a, g := m.value("sluice_partition_attempts", "orders", stuck), m.value("sluice_partition_lag_seconds", "orders", stuck)
		if m.value("sluice_partition_state", "orders", stuck, `state="retrying"`) != 1 || a <= attempts || g <= age {
			return fmt.Errorf("partition %s: attempts %v (was %v), lag age %v (was %v)", stuck, a, attempts, g, age)
		}
		if f := m.value("sluice_batch_failures_total", "orders", stuck); f < a {
			return fmt.Errorf("sluice_batch_failures_total %v below the attempts %v", f, a)
		}
		return nil
	})
	// The same lag age in pipeline status (API and CLI table).
	first := statusOf(t, s, "orders", stuck)
	if first.OldestUnprocessed == nil || first.LagAgeSeconds <= 0 {
		t.Fatalf("status of the stuck partition %s: %+v, want oldest_unprocessed and lag_age_seconds > 0", stuck, first)
	}
	e2e.WaitFor(t, e2e.Scaled(60*time.Second), "lag_age_seconds growing in pipeline status", func() error {
		if st := statusOf(t, s, "orders", stuck); st.LagAgeSeconds <= first.LagAgeSeconds+1 || !st.OldestUnprocessed.Equal(*first.OldestUnprocessed) {
			return fmt.Errorf("partition %s: %+v (was %+v)", stuck, st, first)
		}
		return nil
	})
	if out := cli(t, s, "pipeline", "status", "orders"); !regexp.MustCompile(`LAG_AGE[\s\S]*retrying\s.*\s\d+s\s`).MatchString(out) {
		t.Errorf("sluice pipeline status shows no lag age for the retrying partition:\n%s", out)
	}

	// The fix: version 2 without the failure, the alias moved to it.
	cli(t, s, "fn", "deploy", "poison", "--runtime", "wasm", "--code", wasm, "--timeout", "10s", "--env", "FAIL_POISON=0")
	cli(t, s, "fn", "publish", "poison")
	cli(t, s, "fn", "alias", "poison", "live", "--version", "2")
	s.WaitCount("select count(*) from orders", 5, e2e.Scaled(60*time.Second))
	e2e.WaitFor(t, e2e.Scaled(60*time.Second), "the partition running again in /metrics", func() error {
		m := scrape(t, s, e2e.AdminKey)
		if m.value("sluice_partition_state", "orders", stuck, `state="running"`) != 1 || m.value("sluice_partition_state", "orders", stuck, `state="retrying"`) != 0 ||
			m.value("sluice_partition_attempts", "orders", stuck) != 0 || m.value("sluice_partition_lag_seconds", "orders", stuck) != 0 ||
			m.value("sluice_partition_lag_records", "orders", stuck) != 0 {
			return fmt.Errorf("partition %s:\n%s", stuck, m.grep(`partition="`+stuck+`"`))
		}
		return nil
	})
	if st := statusOf(t, s, "orders", stuck); st.OldestUnprocessed != nil || st.LagAgeSeconds != 0 || st.Lag != 0 {
		t.Errorf("status of partition %s after recovery: %+v, want no lag and no lag age", stuck, st)
	}
	s.Query("select count(*) from orders") // a query, counted
	m := scrape(t, s, e2e.AdminKey)
	if in := m.value("sluice_records_in_total", "orders", "0") + m.value("sluice_records_in_total", "orders", "1"); in != 5 {
		t.Errorf("sluice_records_in_total of orders = %v, want 5", in)
	}
	if n := m.value("sluice_ingest_records_total", `stream="orders"`, `result="ok"`); n != 5 {
		t.Errorf("sluice_ingest_records_total of orders = %v, want 5", n)
	}
	if m.value("sluice_queries_total") < 1 || m.value("sluice_table_files_written_total", `table="orders"`) < 1 {
		t.Errorf("queries and files written not counted:\n%s", m.grep("sluice_queries_total", "sluice_table_files_written_total"))
	}

	// Every metric the dashboard and the alert rules use is exposed.
	for _, file := range []string{"../../deploy/grafana/sluice-dashboard.json", "../../deploy/prometheus/alerts.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := regexp.MustCompile(`sluice_[a-z_]+`).FindAllString(string(data), -1)
		if len(names) < 5 {
			t.Fatalf("%s names only %v", file, names)
		}
		for _, name := range names {
			if family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count"); !m.types[family] && !m.types[name] {
				t.Errorf("%s uses %s, which the server does not expose", file, name)
			}
		}
	}

	// Who may scrape: admin or metrics keys, not others.
	var key struct{ Key string }
	s.Post("/v1/keys", "application/json", []byte(`{"scopes":["metrics"]}`), &key)
	var ingestKey struct{ Key string }
	s.Post("/v1/keys", "application/json", []byte(`{"scopes":["ingest:*"]}`), &ingestKey)
	for _, c := range []struct {
		key  string
		want int
	}{{key.Key, 200}, {ingestKey.Key, 403}, {"", 401}} {
		resp, err := s.Do("GET", "/metrics", "", nil, c.key)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET /metrics with key %q: %d, want %d", c.key, resp.StatusCode, c.want)
		}
	}

	// Log lines about a partition say where it is.
	retries := 0
	for _, line := range strings.Split(s.Log(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		if _, ok := l["partition"]; !ok {
			continue
		}
		for _, k := range []string{"pipeline", "stream", "offset"} {
			if _, ok := l[k]; !ok {
				t.Errorf("log line about a partition without %s: %s", k, line)
			}
		}
		if l["msg"] == "batch failed; retrying" && l["pipeline"] == "orders" && l["stream"] == "orders" {
			retries++
		}
	}
	if retries == 0 {
		t.Errorf("no JSON log line of the retries:\n%s", s.Log())
	}
}

// metricsText is one scrape: the sample lines and the families declared.
type metricsText struct {
	lines []string
	types map[string]bool
}

func scrape(t *testing.T, s *e2e.Server, key string) metricsText {
	t.Helper()
	resp, err := s.Do("GET", "/metrics", "", nil, key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s %s", resp.Status, body)
	}
	m := metricsText{types: map[string]bool{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			m.types[strings.Fields(f)[0]] = true
		} else if !strings.HasPrefix(line, "#") && line != "" {
			m.lines = append(m.lines, line)
		}
	}
	return m
}

// value is the sample of name whose labels hold pipeline="p" and
// partition="n" (given as "p", "n"), or the label matchers given as
// `k="v"`; -1 if there is none.
func (m metricsText) value(name string, match ...string) float64 {
	for i, mt := range match {
		if !strings.Contains(mt, "=") {
			match[i] = []string{`pipeline="`, `partition="`}[min(i, 1)] + mt + `"`
		}
	}
	for _, line := range m.lines {
		series, v, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		all := true
		for _, mt := range match {
			all = all && strings.Contains(series, mt)
		}
		if all {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// grep is the sample lines that contain any of subs (for failure messages).
func (m metricsText) grep(subs ...string) string {
	var out []string
	for _, line := range m.lines {
		for _, sub := range subs {
			if strings.Contains(line, sub) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
