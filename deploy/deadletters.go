package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/schemas"
)

// A pipeline with a dead_letter_table gives records up to a table in two
// steps that each reuse the exactly-once machinery of streams and pipelines:
// the records go, as to any dead-letter stream, to an internal stream that
// sluice owns (DeadLetterStream), and an internal pipeline (Internal =
// InternalDeadLetters, same name as the stream) writes each of them as a row
// of the table. Every pipeline that names the table shares the two.

// DeadLetterPrefix starts the names of the internal dead-letter streams and
// pipelines; users cannot create streams or pipelines with it.
const DeadLetterPrefix = "_dlq_"

// InternalDeadLetters marks the internal pipeline that turns a dead-letter
// stream's records into rows of its table (Pipeline.Internal).
const InternalDeadLetters = "dead_letters"

// deadLetterPartitions is the partition count of an internal dead-letter
// stream. Dead letters are rare, and one partition keeps every origin
// partition's dead letters in the order they were sent, which the internal
// pipeline's deduplication relies on (see processors.DeadLetterRows).
const deadLetterPartitions = 1

// DeadLetterStream names the internal stream, and the internal pipeline, that
// carry the dead letters of table.
func DeadLetterStream(table string) string { return DeadLetterPrefix + table }

// InternalStream reports whether stream is one sluice creates and writes
// itself (a dead-letter table's stream, the audit stream): not for
// producers.
func InternalStream(stream string) bool {
	return strings.HasPrefix(stream, DeadLetterPrefix) || strings.HasPrefix(stream, InternalPrefix)
}

// DeadLetterSchema is the schema of a dead-letter table: one row per record
// given up. The record's columns are named as in the envelope a function
// gets; data is the record's value as it was sent (JSON text, queryable with
// data->>'field'). Rows are partitioned by the day they were given up.
func DeadLetterSchema() *schemas.Schema {
	return &schemas.Schema{
		Columns: []schemas.Column{
			{Name: "failed_at", Type: schemas.Timestamp, NotNull: true},
			{Name: "pipeline", Type: schemas.String},
			{Name: "stream", Type: schemas.String},
			{Name: "partition", Type: schemas.Int32},
			{Name: "offset", Type: schemas.Int64},
			{Name: "key", Type: schemas.String},
			{Name: "timestamp", Type: schemas.Timestamp},
			{Name: "headers", Type: schemas.JSON},
			{Name: "data", Type: schemas.String},
			{Name: "error", Type: schemas.String},
			{Name: "attempts", Type: schemas.Int32},
			{Name: "function", Type: schemas.String},
			{Name: "function_version", Type: schemas.String},
		},
		TimeColumn:  "failed_at",
		PartitionBy: []string{"day(failed_at)"},
	}
}

// checkDeadLetterSchema reports why s cannot take dead-letter rows: each
// dead-letter column must be there with its type (an int32 one may have been
// widened to int64), and every other column must be nullable.
func checkDeadLetterSchema(s *schemas.Schema) error {
	var errs []error
	var missing []string
	want := DeadLetterSchema()
	for _, c := range want.Columns {
		have, ok := s.Column(c.Name)
		switch {
		case !ok:
			missing = append(missing, fmt.Sprintf("%s %s", c.Name, c.Type))
		case have.Type != c.Type && (c.Type != schemas.Int32 || have.Type != schemas.Int64):
			errs = append(errs, fmt.Errorf("its column %q is %s, dead letters need %s", c.Name, have.Type, c.Type))
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("it lacks the dead-letter columns %s", strings.Join(missing, ", ")))
	}
	for _, c := range s.Columns {
		if _, ok := want.Column(c.Name); !ok && c.NotNull {
			errs = append(errs, fmt.Errorf("its column %q is not null, and dead-letter rows have no value for it", c.Name))
		}
	}
	return errors.Join(errs...)
}

// checkDeadLetterTable reports what keeps p's dead_letter_table from taking
// its dead letters (nothing when it has none).
func (r *Registry) checkDeadLetterTable(p *Pipeline) []error {
	if p.DeadLetterTable == "" {
		return nil
	}
	var errs []error
	if p.Stream == DeadLetterStream(p.DeadLetterTable) {
		errs = append(errs, fmt.Errorf("cannot give records up to dead_letter_table %q: the pipeline reads its internal stream %q, so given-up records would come back forever", p.DeadLetterTable, p.Stream))
	}
	if t, ok := r.Table(p.DeadLetterTable); ok {
		if err := checkDeadLetterSchema(&t.Schema); err != nil {
			errs = append(errs, fmt.Errorf("cannot write dead letters into table %q: %w; name a table that does not exist yet (sluice creates it with the dead-letter schema) or one with the dead-letter columns (README, \"Dead letters\")", p.DeadLetterTable, err))
		}
	}
	return errs
}

// reservedName reports a user-chosen stream or pipeline name that only
// sluice's internal objects may take.
func reservedName(kind, name string) error {
	if strings.HasPrefix(name, DeadLetterPrefix) {
		return fmt.Errorf("%s name %q starts with %q, which is reserved for sluice's internal dead-letter streams and pipelines", kind, name, DeadLetterPrefix)
	}
	if strings.HasPrefix(name, InternalPrefix) {
		return fmt.Errorf("%s name %q starts with %q, which is reserved for sluice's internal topics (such as the function logs)", kind, name, InternalPrefix)
	}
	return nil
}

// InternalPrefix starts the names of sluice's other internal Kafka topics
// (fnlog.Topic); no stream may take them.
const InternalPrefix = "_sluice"

// ensureDeadLetters creates what dead-letter table needs, each part only if
// it is missing: the table (with DeadLetterSchema), the internal stream and
// the internal pipeline between them. A call that failed half way is
// finished by the next one, and concurrent calls (several pipelines naming
// one table) create each part once.
func (r *Registry) ensureDeadLetters(ctx context.Context, table string) error {
	r.fnMu.Lock()
	defer r.fnMu.Unlock()
	if _, ok := r.Table(table); !ok {
		t := Table{Name: table, Schema: *DeadLetterSchema()}
		if err := t.normalize(); err != nil {
			return fmt.Errorf("BUG: dead-letter table %q is invalid: %w", table, err)
		}
		if err := createObject(ctx, r, "tables", &r.tables, t.Name, t); err != nil && !errors.Is(err, ErrExists) {
			return err // ErrExists: another process made it meanwhile
		}
	}
	name := DeadLetterStream(table)
	if _, ok := r.Stream(name); !ok {
		s := Stream{Name: name, Partitions: deadLetterPartitions}
		if err := s.normalize(); err != nil {
			return fmt.Errorf("BUG: dead-letter stream %q is invalid: %w", name, err)
		}
		if err := r.addStream(ctx, s); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	if _, ok := r.Pipeline(name); ok {
		return nil
	}
	p := Pipeline{Name: name, Stream: name, Table: table, Internal: InternalDeadLetters}
	if err := p.normalize(); err != nil {
		return fmt.Errorf("BUG: dead-letter pipeline %q is invalid: %w", name, err)
	}
	if err := createObject(ctx, r, "pipelines", &r.pipelines, p.Name, p); err != nil && !errors.Is(err, ErrExists) {
		return err
	}
	return nil
}
