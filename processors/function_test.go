package processors_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/processors"
	"github.com/sluice-dev/sluice/schemas"
)

var (
	poisonOnce sync.Once
	poisonWasm []byte
	poisonErr  error
)

// buildPoison builds testdata/poison as a warm wasm module with the Go SDK.
func buildPoison(t *testing.T) []byte {
	poisonOnce.Do(func() {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("sluice-poison-%d.wasm", os.Getpid()))
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/poison")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			poisonErr = fmt.Errorf("build poison function: %v\n%s", err, b)
			return
		}
		poisonWasm, poisonErr = os.ReadFile(out)
		os.Remove(out)
	})
	if poisonErr != nil {
		t.Fatal(poisonErr)
	}
	return poisonWasm
}

var fnSchema = schemas.Schema{Columns: []schemas.Column{
	{Name: "message", Type: schemas.String},
	{Name: "src_offset", Type: schemas.Int64, NotNull: true},
	{Name: "_partition", Type: schemas.Int32},
}}

// readFile reads the Parquet file at key; the caller releases the table.
func (e *env) readFile(key string) arrow.Table {
	f, err := file.OpenParquetFile(e.bucket.Path(key), false)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	r, err := pqarrow.NewFileReader(f, pqarrow.ArrowReadProperties{}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	tbl, err := r.ReadTable(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return tbl
}

// srcOffsets reads partition p's rows in file order (files by first offset),
// returning the src_offset column.
func (e *env) srcOffsets(p int) []int64 {
	type part struct {
		first int64
		vals  []int64
	}
	var parts []part
	for _, key := range e.committedFiles("t") {
		var first, last int64
		var pp int
		if _, err := fmt.Sscanf(filepath.Base(key), "s-%d-%d-%d-", &pp, &first, &last); err != nil || pp != p {
			continue
		}
		tbl := e.readFile(key)
		defer tbl.Release()
		var vals []int64
		col := tbl.Column(1)
		for _, ch := range col.Data().Chunks() {
			for i := range ch.Len() {
				var v int64
				fmt.Sscan(ch.ValueStr(i), &v)
				vals = append(vals, v)
			}
		}
		parts = append(parts, part{first, vals})
	}
	var out []int64
	for len(parts) > 0 { // by first offset
		min := 0
		for i := range parts {
			if parts[i].first < parts[min].first {
				min = i
			}
		}
		out = append(out, parts[min].vals...)
		parts = append(parts[:min], parts[min+1:]...)
	}
	return out
}

// TestPoisonPillAndAliasMove: a function that fails on one record leaves its
// partition retrying (error, stderr and version visible) while the other
// partitions flow; moving the alias to a fixed version un-sticks it without
// a restart, and every record is in the table once, in offset order. While
// it is stuck its lag age (oldest_unprocessed) grows, in this process and in
// one that runs no workers; once caught up it is 0 in both.
func TestPoisonPillAndAliasMove(t *testing.T) {
	code := buildPoison(t)
	e := newEnvWith(t, func(ctx context.Context, reg *deploy.Registry) error {
		if _, err := reg.DeployFunction(ctx, "f", deploy.FunctionConfig{Runtime: "wasm", Timeout: deploy.Duration(5 * time.Second), Env: map[string]string{"FAIL_POISON": "1"}}, code); err != nil {
			return err
		}
		if _, err := reg.PublishFunction(ctx, "f"); err != nil {
			return err
		}
		if _, err := reg.SetAlias(ctx, "f", "live", 1); err != nil {
			return err
		}
		_, err := reg.CreateTable(ctx, deploy.Table{Name: "t", Schema: fnSchema, FileAge: deploy.Duration(200 * time.Millisecond)})
		if err != nil {
			return err
		}
		_, err = reg.CreatePipeline(ctx, deploy.Pipeline{Name: "p", Stream: "s", Function: "f:live", Table: "t", BatchSize: 10, BatchWindow: deploy.Duration(20 * time.Millisecond)})
		return err
	})
	e.produceWith(50, func(p int32, i int) string {
		if p == 2 && i == 10 {
			return `{"message":"bad","poison":true}`
		}
		return fmt.Sprintf(`{"message":"m%d"}`, i)
	})
	for _, p := range []int{0, 1, 3} {
		waitFor(t, fmt.Sprintf("partition %d's 50 rows", p), func() bool { return e.rows(p) == 50 })
	}
	waitFor(t, "partition 2 to show retrying with the function's error", func() bool {
		s := e.status(2)
		return s.State == processors.StateRetrying && s.Attempts >= 2 && strings.Contains(s.LastError, "poison pill at offset 10") &&
			strings.Contains(s.Stderr, "poison pill at offset 10") && s.FunctionVersion == "1"
	})
	// The rows before the poison pill's batch are written while it retries
	// (freshness), and nothing after it.
	waitFor(t, "partition 2's 10 rows before the poison pill", func() bool { return e.rows(2) == 10 })
	// Its lag age grows, here and from a process that runs no workers (the
	// status the owner recorded in its progress object).
	other := processors.NewEngine(e.reg, e.bucket, e.brokers, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer other.Close()
	otherStatus := func() processors.PartitionStatus {
		st, err := other.Status(t.Context(), "p")
		if err != nil {
			t.Fatal(err)
		}
		return st[2]
	}
	local, stored := e.status(2), otherStatus()
	for _, s := range []processors.PartitionStatus{local, stored} {
		if s.OldestUnprocessed == nil || s.LagAgeSeconds <= 0 || s.Lag != 40 {
			t.Fatalf("status of the stuck partition 2: %+v, want lag 40 and a lag age", s)
		}
	}
	waitFor(t, "partition 2's lag age growing, here and elsewhere", func() bool {
		l, s := e.status(2), otherStatus()
		return l.LagAgeSeconds > local.LagAgeSeconds+0.5 && s.LagAgeSeconds > stored.LagAgeSeconds+0.5 &&
			l.OldestUnprocessed.Equal(*local.OldestUnprocessed) && s.OldestUnprocessed.Equal(*local.OldestUnprocessed)
	})
	waitFor(t, "the poison pill's stderr in the function logs, with partition, version and pipeline", func() bool {
		logs, err := e.engine.Logs.Tail(t.Context(), "f", 100, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		l := logs[max(0, len(logs)-1):]
		return len(l) == 1 && l[0].Partition == 2 && l[0].Version == "1" && l[0].Pipeline == "p" && strings.Contains(l[0].Line, "poison pill at offset 10")
	})

	// The fix: $LATEST without FAIL_POISON, published as version 2, alias moved.
	ctx := t.Context()
	if _, err := e.reg.DeployFunction(ctx, "f", deploy.FunctionConfig{Runtime: "wasm", Timeout: deploy.Duration(5 * time.Second)}, code); err != nil {
		t.Fatal(err)
	}
	if v, err := e.reg.PublishFunction(ctx, "f"); err != nil || v.Version != 2 {
		t.Fatalf("publish: %+v %v", v, err)
	}
	if _, err := e.reg.SetAlias(ctx, "f", "live", 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partition 2's 50 rows after the alias moved", func() bool { return e.rows(2) == 50 })
	waitFor(t, "partition 2 running version 2", func() bool {
		s := e.status(2)
		return s.State == processors.StateRunning && s.FunctionVersion == "2"
	})
	waitFor(t, "partition 2 caught up, without lag age, here and elsewhere", func() bool {
		l, s := e.status(2), otherStatus()
		return l.Lag == 0 && l.LagAgeSeconds == 0 && l.OldestUnprocessed == nil && s.Lag == 0 && s.LagAgeSeconds == 0 && s.OldestUnprocessed == nil
	})
	for p := range 4 {
		got := e.srcOffsets(p)
		if len(got) != 50 {
			t.Fatalf("partition %d: %d rows", p, len(got))
		}
		for i, v := range got {
			if v != int64(i) {
				t.Fatalf("partition %d: row %d has src_offset %d: rows out of offset order or duplicated: %v", p, i, v, got)
			}
		}
	}
}

// TestDeadLetterWithBisect: with max_attempts, a dead-letter stream and
// bisect-on-error, a batch holding one poison record is split until the
// poison record alone is given up: it lands in the dead-letter stream, whole
// and with the error, and every other record is in the table.
func TestDeadLetterWithBisect(t *testing.T) {
	code := buildPoison(t)
	e := newEnvWith(t, func(ctx context.Context, reg *deploy.Registry) error {
		if _, err := reg.DeployFunction(ctx, "f", deploy.FunctionConfig{Runtime: "wasm", Timeout: deploy.Duration(5 * time.Second), Env: map[string]string{"FAIL_POISON": "1"}}, code); err != nil {
			return err
		}
		if _, err := reg.CreateStream(ctx, deploy.Stream{Name: "dlq", Partitions: 1}); err != nil {
			return err
		}
		if _, err := reg.CreateTable(ctx, deploy.Table{Name: "t", Schema: fnSchema, FileAge: deploy.Duration(200 * time.Millisecond)}); err != nil {
			return err
		}
		_, err := reg.CreatePipeline(ctx, deploy.Pipeline{Name: "p", Stream: "s", Function: "f", Table: "t", BatchSize: 10,
			BatchWindow: deploy.Duration(20 * time.Millisecond), MaxAttempts: 2, DeadLetter: "dlq", BisectOnError: true})
		return err
	})
	e.produceWith(30, func(p int32, i int) string {
		if p == 1 && i == 13 {
			return `{"message":"bad","poison":true}`
		}
		return fmt.Sprintf(`{"message":"m%d"}`, i)
	})
	for p := range 4 {
		want := int64(30)
		if p == 1 {
			want = 29
		}
		waitFor(t, fmt.Sprintf("partition %d's %d rows", p, want), func() bool { return e.rows(p) == want })
	}
	got := e.srcOffsets(1)
	for i, v := range got {
		if wantOff := int64(i) + map[bool]int64{true: 1, false: 0}[i >= 13]; v != wantOff {
			t.Fatalf("partition 1 rows: %v", got)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics("dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	fetches := cl.PollFetches(ctx)
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Value) != `{"message":"bad","poison":true}` {
		t.Fatalf("dead-letter records: %d %v", len(recs), fetches.Errors())
	}
	hdr := map[string]string{}
	for _, h := range recs[0].Headers {
		hdr[h.Key] = string(h.Value)
	}
	if hdr["sluice.offset"] != "13" || hdr["sluice.partition"] != "1" || !strings.Contains(hdr["sluice.error"], "poison pill at offset 13") {
		t.Fatalf("dead-letter headers: %v", hdr)
	}
	if s := e.status(1); s.GivenUp != 1 || s.State != processors.StateRunning {
		t.Fatalf("status: %+v", s)
	}
}

// TestInfiniteLoopTimesOut: a function that loops forever on a record is
// stopped by its timeout, the batch is retried (state retrying, error
// "timeout"), other partitions flow, and a fixed version un-sticks it.
func TestInfiniteLoopTimesOut(t *testing.T) {
	code := buildPoison(t)
	e := newEnvWith(t, func(ctx context.Context, reg *deploy.Registry) error {
		if _, err := reg.DeployFunction(ctx, "f", deploy.FunctionConfig{Runtime: "wasm", Timeout: deploy.Duration(300 * time.Millisecond), Env: map[string]string{"FAIL_POISON": "1"}}, code); err != nil {
			return err
		}
		if _, err := reg.CreateTable(ctx, deploy.Table{Name: "t", Schema: fnSchema, FileAge: deploy.Duration(200 * time.Millisecond)}); err != nil {
			return err
		}
		_, err := reg.CreatePipeline(ctx, deploy.Pipeline{Name: "p", Stream: "s", Function: "f", Table: "t", BatchSize: 10, BatchWindow: deploy.Duration(20 * time.Millisecond)})
		return err
	})
	e.produceWith(20, func(p int32, i int) string {
		if p == 3 && i == 5 {
			return `{"message":"spin","loop":true}`
		}
		return fmt.Sprintf(`{"message":"m%d"}`, i)
	})
	for _, p := range []int{0, 1, 2} {
		waitFor(t, fmt.Sprintf("partition %d's 20 rows", p), func() bool { return e.rows(p) == 20 })
	}
	waitFor(t, "partition 3 retrying after timeouts", func() bool {
		s := e.status(3)
		return s.State == processors.StateRetrying && s.Attempts >= 2 && strings.Contains(s.LastError, "timeout")
	})
	// $LATEST without FAIL_POISON: the pipeline follows $LATEST.
	if _, err := e.reg.DeployFunction(t.Context(), "f", deploy.FunctionConfig{Runtime: "wasm", Timeout: deploy.Duration(300 * time.Millisecond)}, code); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partition 3's 20 rows", func() bool { return e.rows(3) == 20 })
}
