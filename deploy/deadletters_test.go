package deploy

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/schemas"
)

// deadLetterReg opens a registry with stream s and table t.
func deadLetterReg(t *testing.T) (*Registry, *topicLog) {
	t.Helper()
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r := openReg(t, b, &topics)
	if _, err := r.CreateStream(t.Context(), Stream{Name: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateTable(t.Context(), Table{Name: "t", Schema: *schemas.LogSchema()}); err != nil {
		t.Fatal(err)
	}
	return r, &topics
}

func TestDeadLetterTableValidation(t *testing.T) {
	r, topics := deadLetterReg(t)
	ctx := t.Context()
	incompatible := schemas.Schema{Columns: []schemas.Column{{Name: "error", Type: schemas.Int64}, {Name: "n", Type: schemas.Int64, NotNull: true}}}
	if _, err := r.CreateTable(ctx, Table{Name: "odd", Schema: incompatible}); err != nil {
		t.Fatal(err)
	}
	// f creates pipeline p from s to t with give-up settings and checks
	// the error says each of says.
	f := func(p Pipeline, says ...string) {
		t.Helper()
		p.Name, p.Stream, p.Table = "p", cmp.Or(p.Stream, "s"), "t"
		_, err := r.CreatePipeline(ctx, p)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("CreatePipeline(%+v) = %v, want ErrInvalid", p, err)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	}
	f(Pipeline{MaxAttempts: 3, DeadLetter: "s", DeadLetterTable: "dead"},
		`cannot give records up to both dead_letter stream "s" and dead_letter_table "dead": keep one (--dead-letter or --dead-letter-table)`)
	f(Pipeline{MaxAttempts: 3}, "needs a dead_letter stream or a dead_letter_table")
	f(Pipeline{DeadLetterTable: "dead"}, "dead_letter, dead_letter_table and bisect_on_error take effect only with max_attempts or max_record_age")
	f(Pipeline{MaxAttempts: 3, DeadLetterTable: "bad-name"}, `dead_letter_table name "bad-name" must be letters`)
	f(Pipeline{MaxAttempts: 3, DeadLetterTable: strings.Repeat("x", 124)}, "at most 123 of them")
	f(Pipeline{MaxAttempts: 3, DeadLetterTable: "odd"},
		`cannot write dead letters into table "odd"`, `its column "error" is int64, dead letters need string`,
		"it lacks the dead-letter columns failed_at timestamp, pipeline string,", "data string", `its column "n" is not null`, "name a table that does not exist yet")
	f(Pipeline{Stream: "_dlq_dead", MaxAttempts: 3, DeadLetterTable: "dead"},
		`cannot give records up to dead_letter_table "dead": the pipeline reads its internal stream "_dlq_dead"`)
	f(Pipeline{Internal: InternalDeadLetters}, "internal (\"dead_letters\") is set by sluice")
	_, err := r.CreatePipeline(ctx, Pipeline{Name: "_dlq_x", Stream: "s", Table: "t"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `pipeline name "_dlq_x" starts with "_dlq_", which is reserved`) {
		t.Fatalf("reserved pipeline name: %v", err)
	}
	_, err = r.CreateStream(ctx, Stream{Name: "_sluice_function_logs"}) // processors/fnlog.Topic
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "reserved for sluice's internal topics") {
		t.Fatalf("the function logs' topic as a stream name: %v", err)
	}
	_, err = r.CreateStream(ctx, Stream{Name: "_dlq_x"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `stream name "_dlq_x" starts with "_dlq_"`) {
		t.Fatalf("reserved stream name: %v", err)
	}
	if _, ok := r.Table("dead"); ok || len(*topics) != 1 || len(r.Pipelines()) != 0 {
		t.Fatalf("invalid pipelines created things: tables %v, topics %v, pipelines %v", r.Tables(), *topics, r.Pipelines())
	}
}

// TestDeadLetterTableCreatesInternalParts: the first pipeline naming a
// dead-letter table creates the table, its internal stream (one partition)
// and internal pipeline; a second one shares them; an existing table with
// the dead-letter columns (plus a nullable one, and a widened type) is
// taken as it is.
func TestDeadLetterTableCreatesInternalParts(t *testing.T) {
	r, topics := deadLetterReg(t)
	ctx := t.Context()
	if _, err := r.CreateStream(ctx, Stream{Name: "s2"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Pipeline{
		{Name: "p1", Stream: "s", Table: "t", MaxAttempts: 3, DeadLetterTable: "dead"},
		{Name: "p2", Stream: "s2", Table: "t", MaxRecordAge: Duration(time.Hour), DeadLetterTable: "dead"},
	} {
		if _, err := r.CreatePipeline(ctx, p); err != nil {
			t.Fatalf("CreatePipeline %s: %v", p.Name, err)
		}
	}
	tbl, ok := r.Table("dead")
	if !ok || tbl.Schema.TimeColumn != "failed_at" || len(tbl.Schema.Columns) != len(DeadLetterSchema().Columns) {
		t.Fatalf("dead-letter table: %+v", tbl)
	}
	if s, ok := r.Stream("_dlq_dead"); !ok || s.Partitions != 1 {
		t.Fatalf("internal stream: %+v", s)
	}
	if n := slices.Index(*topics, "_dlq_dead"); n < 0 || slices.Index((*topics)[n+1:], "_dlq_dead") >= 0 {
		t.Fatalf("topics created: %v", *topics)
	}
	ip, ok := r.Pipeline("_dlq_dead")
	if !ok || ip.Internal != InternalDeadLetters || ip.Stream != "_dlq_dead" || ip.Table != "dead" || ip.Function != "" {
		t.Fatalf("internal pipeline: %+v", ip)
	}
	if got := len(r.Pipelines()); got != 3 {
		t.Fatalf("%d pipelines, want p1, p2 and the internal one", got)
	}

	own := *DeadLetterSchema()
	own.Columns = append(own.Columns, schemas.Column{Name: "note", Type: schemas.String})
	own.Columns[3].Type = schemas.Int64 // partition, widened
	for _, tb := range []Table{{Name: "mine", Schema: own}, {Name: "t3", Schema: *schemas.LogSchema()}} {
		if _, err := r.CreateTable(ctx, tb); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.CreatePipeline(ctx, Pipeline{Name: "p3", Stream: "s", Table: "t3", MaxAttempts: 1, DeadLetterTable: "mine"}); err != nil {
		t.Fatalf("pipeline into an existing compatible table: %v", err)
	}
	if got, _ := r.Table("mine"); len(got.Schema.Columns) != len(own.Columns) {
		t.Fatalf("existing table changed: %+v", got.Schema)
	}
}

// TestDirectPipelineNeedsRestOrGivingUp: a pipeline without a function into
// a table without a rest column is refused unless it may give records up,
// since a record that does not fit would stop its partition for good.
func TestDirectPipelineNeedsRestOrGivingUp(t *testing.T) {
	r, _ := deadLetterReg(t)
	ctx := t.Context()
	noRest := schemas.Schema{Columns: []schemas.Column{{Name: "user", Type: schemas.String}}}
	if _, err := r.CreateTable(ctx, Table{Name: "clicks", Schema: noRest}); err != nil {
		t.Fatal(err)
	}
	_, err := r.CreatePipeline(ctx, Pipeline{Name: "direct", Stream: "s", Table: "clicks"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "has no rest_column") || !strings.Contains(err.Error(), "--dead-letter-table") {
		t.Fatalf("direct pipeline into a table without rest column: %v", err)
	}
	if _, err := r.CreatePipeline(ctx, Pipeline{Name: "direct", Stream: "s", Table: "clicks", MaxAttempts: 3, DeadLetterTable: "clicks_dead"}); err != nil {
		t.Fatalf("with giving up: %v", err)
	}
	if _, err := r.CreatePipeline(ctx, Pipeline{Name: "logs", Stream: "s", Table: "t"}); err != nil {
		t.Fatalf("into a table with a rest column: %v", err)
	}
}
