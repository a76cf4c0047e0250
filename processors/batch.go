// Package processors consumes each pipeline's stream per partition, cuts
// ordered batches, turns them into rows (Direct copies each record's data,
// Function runs a processor function, DeadLetterRows writes dead letters),
// hands them to the sink and commits offsets once the sink says they are
// durable.
package processors

import (
	"context"
	"time"

	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// Pipeline is a pipeline as the engine runs it, resolved from the registry.
type Pipeline struct {
	Name        string
	Group       string // Kafka consumer group
	Stream      string // Kafka topic
	Function    string // function[:qualifier]; empty for a direct pipeline
	Table       string
	Schema      *schemas.Schema
	BatchSize   int
	BatchBytes  int
	BatchWindow time.Duration
	FileBytes   int64
	FileAge     time.Duration
	FileIdle    time.Duration
	RowGroups   int64
	Budget      *sink.Budget // shared by all pipelines of the engine
	// Compaction by each partition's owner (see sink.Writer.Compact).
	CompactInterval time.Duration
	CompactTarget   int64
	RetireGrace     time.Duration
	// Worker names this process in status (its group instance ID).
	Worker string
	// Giving up on a batch (see deploy.Pipeline); zero values: never.
	// DeadLetter is the stream given-up records go to: the pipeline's
	// dead_letter, or the internal stream of its dead_letter_table.
	MaxAttempts   int
	MaxRecordAge  time.Duration
	DeadLetter    string
	BisectOnError bool
	// DeadLetterRows marks the internal pipeline of a dead-letter table: its
	// records are dead letters, written as rows by DeadLetterRows.
	DeadLetterRows bool
}

// Record is one Kafka record as a pipeline sees it.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp time.Time
	Headers   map[string]string
}

// Batch is a run of consecutive records of one partition, in offset order.
type Batch struct {
	Stream    string
	Partition int32
	Records   []Record
	Bytes     int
}

// split cuts the batch into two halves, in order.
func (b *Batch) split() (*Batch, *Batch) {
	mid := len(b.Records) / 2
	first := &Batch{Stream: b.Stream, Partition: b.Partition, Records: b.Records[:mid]}
	second := &Batch{Stream: b.Stream, Partition: b.Partition, Records: b.Records[mid:]}
	for _, r := range first.Records {
		first.Bytes += len(r.Value)
	}
	second.Bytes = b.Bytes - first.Bytes
	return first, second
}

// First and Last are the batch's offset range.
func (b *Batch) First() int64 { return b.Records[0].Offset }
func (b *Batch) Last() int64  { return b.Records[len(b.Records)-1].Offset }

// Processor turns a batch into table rows. Contract: it must not keep or
// modify the batch after returning; an error fails the whole batch, which is
// then retried, in order, with backoff, and never skipped. It is called for
// one batch at a time per partition; ctx ends when the partition stops.
type Processor interface {
	Process(ctx context.Context, b *Batch) ([]schemas.Row, error)
	// Close releases what the processor holds (a function instance).
	Close()
}

// Direct copies each record's data into the table as it is (Firehose-style
// "direct put"). It converts in schemas.Keep mode: a field that does not fit
// its column is kept in the rest column instead of failing the batch, since
// no function version could ever fix the record. A schema without a rest
// column converts strictly, and a record that does not fit fails the batch.
type Direct struct {
	Schema *schemas.Schema
}

func (d Direct) Close() {}

func (d Direct) Process(_ context.Context, b *Batch) ([]schemas.Row, error) {
	rows := make([]schemas.Row, 0, len(b.Records))
	for _, r := range b.Records {
		row, err := d.Schema.Convert(r.Value, schemas.Meta{
			Stream: b.Stream, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Timestamp: r.Timestamp,
		}, schemas.Keep)
		if err != nil {
			return nil, &RecordError{Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// RecordError is a failure attributed to one record.
type RecordError struct {
	Partition int32
	Offset    int64
	Err       error
}

func (e *RecordError) Error() string {
	return "record at partition " + itoa(int64(e.Partition)) + " offset " + itoa(e.Offset) + ": " + e.Err.Error()
}

func (e *RecordError) Unwrap() error { return e.Err }
