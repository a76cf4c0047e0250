package processors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/processors"
	"github.com/sluice-dev/sluice/schemas"
)

const poison = `{"message":"bad","poison":true}`

// TestDeadLetterTable: with max_attempts, bisect-on-error and a
// dead_letter_table, the one poison record becomes one row of the
// dead-letter table (its data, key and headers as sent, the error, where it
// came from), every other record is in the main table once, in order; and a
// dead letter sent again (as by a worker that crashed before recording that
// it gave the batch up) adds no row, also after the internal pipeline
// restarted from its progress.
func TestDeadLetterTable(t *testing.T) {
	code := buildPoison(t)
	e := newEnvWith(t, func(ctx context.Context, reg *deploy.Registry) error {
		if _, err := reg.DeployFunction(ctx, "f", deploy.FunctionConfig{Runtime: "wasm", Timeout: deploy.Duration(5 * time.Second), Env: map[string]string{"FAIL_POISON": "1"}}, code); err != nil {
			return err
		}
		if _, err := reg.CreateTable(ctx, deploy.Table{Name: "t", Schema: fnSchema, FileAge: deploy.Duration(200 * time.Millisecond)}); err != nil {
			return err
		}
		_, err := reg.CreatePipeline(ctx, deploy.Pipeline{Name: "p", Stream: "s", Function: "f", Table: "t", BatchSize: 10,
			BatchWindow: deploy.Duration(20 * time.Millisecond), MaxAttempts: 2, DeadLetterTable: "dead", BisectOnError: true})
		return err
	})
	var recs []*kgo.Record
	for p := range int32(4) {
		for i := range 30 {
			r := &kgo.Record{Topic: "s", Partition: p, Value: fmt.Appendf(nil, `{"message":"m%d"}`, i)}
			if p == 1 && i == 13 {
				r.Key, r.Value, r.Headers = []byte("k13"), []byte(poison), []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}
			}
			recs = append(recs, r)
		}
	}
	if err := e.cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		want := int64(30)
		if p == 1 {
			want = 29
		}
		waitFor(t, fmt.Sprintf("partition %d's %d rows", p, want), func() bool { return e.rows(p) == want })
	}
	want := slices.Concat(seq(0, 13), seq(14, 30))
	if got := e.srcOffsets(1); !slices.Equal(got, want) {
		t.Fatalf("partition 1 rows: %v", got)
	}
	waitFor(t, "the dead-letter row", func() bool { return len(e.tableRows("dead")) == 1 })
	row := e.tableRows("dead")[0]
	for col, want := range map[string]string{"pipeline": "p", "stream": "s", "partition": "1", "offset": "13", "key": "k13",
		"data": poison, "headers": `{"trace":"abc"}`, "attempts": "2", "function": "f", "function_version": "$LATEST"} {
		if row[col] != want {
			t.Errorf("dead-letter row: %s = %q, want %q", col, row[col], want)
		}
	}
	if !strings.Contains(row["error"], "poison pill at offset 13") || !strings.HasPrefix(row["dt"], "dt=") {
		t.Errorf("dead-letter row: %v", row)
	}
	if s := e.status(1); s.GivenUp != 1 || s.State != processors.StateRunning {
		t.Fatalf("status: %+v", s)
	}

	// The resends: the dead letter as the internal stream holds it, sent
	// again, and once more after the internal pipeline restarted.
	letter := e.deadLetter()
	e.resend(letter, 2)
	if _, err := e.reg.SetPaused(t.Context(), "_dlq_dead", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the internal pipeline to stop", func() bool { return e.internalStatus().State == processors.StatePaused })
	if _, err := e.reg.SetPaused(t.Context(), "_dlq_dead", false); err != nil {
		t.Fatal(err)
	}
	e.resend(letter, 3)
	// A later record of the same origin given up is still written.
	later := *letter
	later.Headers = slices.Clone(letter.Headers)
	for i, h := range later.Headers {
		if h.Key == "sluice.offset" {
			later.Headers[i].Value = []byte("20")
		}
	}
	e.resend(&later, 4)
	waitFor(t, "the later dead letter's row", func() bool { return len(e.tableRows("dead")) == 2 })
	rows := e.tableRows("dead")
	if offs := []string{rows[0]["offset"], rows[1]["offset"]}; !slices.Contains(offs, "13") || !slices.Contains(offs, "20") {
		t.Fatalf("dead-letter rows after the resends: %v", rows)
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// deadLetter reads the one record of the internal dead-letter stream.
func (e *env) deadLetter() *kgo.Record {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics("_dlq_dead"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	recs := cl.PollFetches(ctx).Records()
	if len(recs) != 1 {
		e.t.Fatalf("internal dead-letter stream holds %d records, want 1", len(recs))
	}
	return recs[0]
}

// resend produces r to the internal dead-letter stream again and waits
// until the internal pipeline has made everything below end durable.
func (e *env) resend(r *kgo.Record, end int64) {
	e.t.Helper()
	again := &kgo.Record{Topic: r.Topic, Partition: 0, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
	if err := e.cl.ProduceSync(e.t.Context(), again).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	waitFor(e.t, "the internal pipeline to pass offset "+strconv.FormatInt(end-1, 10), func() bool {
		return e.internalStatus().Committed == end
	})
}

func (e *env) internalStatus() processors.PartitionStatus {
	st, err := e.engine.Status(e.t.Context(), "_dlq_dead")
	if err != nil || len(st) != 1 {
		e.t.Fatalf("status of the internal pipeline: %v %v", st, err)
	}
	return st[0]
}

// tableRows reads every row of a table, each as column → value (JSON and
// strings as text; the Hive directory as "dt").
func (e *env) tableRows(table string) []map[string]string {
	var out []map[string]string
	for _, key := range e.committedFiles(table) {
		tbl := e.readFile(key)
		rows := make([]map[string]string, tbl.NumRows())
		for i := range rows {
			rows[i] = map[string]string{"dt": filepath.Base(filepath.Dir(key))}
		}
		for c := range int(tbl.NumCols()) {
			name := tbl.Schema().Field(c).Name
			i := 0
			for _, ch := range tbl.Column(c).Data().Chunks() {
				for j := range ch.Len() {
					if !ch.IsNull(j) {
						rows[i][name] = ch.ValueStr(j)
						if b, ok := ch.(*array.Binary); ok { // JSON columns read as binary
							rows[i][name] = string(b.Value(j))
						}
					}
					i++
				}
			}
		}
		out = append(out, rows...)
		tbl.Release()
	}
	return out
}

// TestDeadLetterRowsDropsResends: a dead letter whose origin (pipeline,
// stream, partition, offset) was written before is dropped, across a
// restore of the state, and only then: the same record read again at the
// same offset (a batch processed again) and later records of the origin,
// or of another origin, are written.
func TestDeadLetterRowsDropsResends(t *testing.T) {
	schema := deploy.DeadLetterSchema()
	offsetCol := slices.IndexFunc(schema.Columns, func(c schemas.Column) bool { return c.Name == "offset" })
	// letter is a dead letter of origin p/s/<partition> at offset off, sent
	// when the origin's durable offset was committed.
	letter := func(at int64, partition, off, committed int) processors.Record {
		return processors.Record{Offset: at, Value: []byte(`{"n":1}`), Timestamp: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC),
			Headers: map[string]string{"sluice.pipeline": "p", "sluice.stream": "s", "sluice.partition": strconv.Itoa(partition),
				"sluice.offset": strconv.Itoa(off), "sluice.committed": strconv.Itoa(committed), "sluice.error": "boom",
				"sluice.failed_at": "2026-11-22T04:00:00Z", "sluice.attempts": "3"}}
	}
	// f processes one batch and checks the origin offsets of its rows.
	f := func(d *processors.DeadLetterRows, want []int64, recs ...processors.Record) {
		t.Helper()
		rows, err := d.Process(t.Context(), &processors.Batch{Stream: "_dlq_dead", Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, r := range rows {
			got = append(got, r.Values[offsetCol].(int64))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("rows of origin offsets %v, want %v", got, want)
		}
	}
	d := &processors.DeadLetterRows{Schema: schema}
	d.Restore(nil)
	f(d, []int64{10, 11}, letter(0, 1, 10, 5), letter(1, 1, 11, 5))
	// A crash, then the batch given up again: resent.
	f(d, []int64{12}, letter(2, 1, 10, 5), letter(3, 1, 11, 5), letter(4, 1, 12, 5))
	state := d.State()
	// The same batch read again at the same offsets (after a crash of the
	// internal pipeline) is written again; the table keeps one copy.
	f(d, []int64{12}, letter(4, 1, 12, 5))
	// Restored from the state: resends still dropped, other origins and
	// later offsets written, and offsets below the origin's settled offset
	// (50, from offset 60's dead letter) are resends.
	d2 := &processors.DeadLetterRows{Schema: schema}
	d2.Restore(state)
	f(d2, []int64{11, 60}, letter(5, 1, 11, 5), letter(6, 2, 11, 5), letter(7, 1, 60, 50), letter(8, 1, 12, 5))
	var st map[string]struct {
		Settled int64
		Spans   []json.RawMessage
	}
	if err := json.Unmarshal(d2.State(), &st); err != nil || st["p/s/1"].Settled != 50 || len(st["p/s/1"].Spans) != 1 {
		t.Fatalf("state after settling: %s %v", d2.State(), err)
	}
	// Records without sluice's headers (not sent by sluice) are written.
	rows, err := d2.Process(t.Context(), &processors.Batch{Stream: "_dlq_dead", Records: []processors.Record{{Offset: 9, Value: []byte("raw")}}})
	if err != nil || len(rows) != 1 {
		t.Fatalf("a record without sluice headers: %v %v", rows, err)
	}
	// Corrupt state fails every batch, saying what to do.
	d3 := &processors.DeadLetterRows{Schema: schema}
	d3.Restore([]byte("{"))
	if _, err := d3.Process(t.Context(), &processors.Batch{Records: []processors.Record{letter(0, 1, 1, 0)}}); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt state: %v", err)
	}
}
