// Package deploy is the control plane: the registry of streams, tables and
// pipelines (kept as JSON objects in the object store, so every process that
// shares the store sees the same registry), the defaults `sluice up`
// provisions, and the admin HTTP API.
package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/schemas"
)

// Duration is a time.Duration written in JSON as a Go duration string ("500ms",
// "168h").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"500ms\" or \"168h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Defaults and limits of the registry's objects.
const (
	DefaultPartitions  = 4
	MaxPartitions      = 1024
	DefaultRetention   = 7 * 24 * time.Hour
	DefaultBatchSize   = 100
	MaxBatchSize       = 100_000
	DefaultBatchWindow = 500 * time.Millisecond
	DefaultBatchBytes  = 4 << 20
	DefaultFileBytes   = 64 << 20
	DefaultFileAge     = 10 * time.Second
	DefaultFileIdle    = 2 * time.Second
	DefaultRowGroup    = 122_880
)

// Stream is a named Kafka topic that producers write to.
type Stream struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	// Retention is how long Kafka keeps records (retention.ms); rows already
	// written to a table stay there regardless.
	Retention Duration `json:"retention"`
}

// Table is a Parquet dataset under tables/<name>/ in the object store.
type Table struct {
	Name   string         `json:"name"`
	Schema schemas.Schema `json:"schema"`
	// FileBytes: a file is written once its buffered rows reach about this
	// many bytes of input.
	FileBytes int64 `json:"file_bytes"`
	// FileAge: buffered rows are written at most this long after the first of
	// them arrived, even if no more records come (an idle stream still
	// flushes). This plus the batch window bounds how stale a query can be.
	FileAge Duration `json:"file_age"`
	// FileIdle: buffered rows are written once no record has come for this
	// long, so a stream that stops is queryable soon after its last record.
	FileIdle Duration `json:"file_idle"`
	// RowGroupRows caps a Parquet row group (DuckDB scans row groups in
	// parallel; its own are 122,880 rows).
	RowGroupRows int64 `json:"row_group_rows"`
}

// Pipeline connects a stream to a table. Without a function it copies each
// record's data into the table as it is (a "direct" pipeline).
type Pipeline struct {
	Name   string `json:"name"`
	Stream string `json:"stream"`
	// Function is "name" (its $LATEST), "name:N" (version N) or
	// "name:alias". The qualifier is resolved at every batch, per
	// partition, so moving an alias takes effect without a restart.
	Function string `json:"function,omitempty"`
	Table    string `json:"table"`
	// Paused pipelines hold their partitions' progress and process nothing.
	Paused bool `json:"paused,omitempty"`
	// BatchSize, BatchBytes and BatchWindow bound each per-partition batch:
	// a batch is cut at whichever comes first.
	BatchSize   int      `json:"batch_size"`
	BatchBytes  int      `json:"batch_bytes"`
	BatchWindow Duration `json:"batch_window"`
	// Giving up is off by default: a failed batch is retried forever. With
	// MaxAttempts (attempts per batch) and/or MaxRecordAge (age of the
	// batch's oldest record), a batch that keeps failing is given up: its
	// records go, whole and with the error in their headers, to the
	// DeadLetter stream, or as rows (DeadLetterSchema) to the
	// DeadLetterTable, and the partition moves on. With BisectOnError a
	// failing batch is first split in halves, recursively, so only the
	// records that fail on their own are given up.
	MaxAttempts     int      `json:"max_attempts,omitempty"`
	MaxRecordAge    Duration `json:"max_record_age,omitempty"`
	DeadLetter      string   `json:"dead_letter,omitempty"`
	DeadLetterTable string   `json:"dead_letter_table,omitempty"`
	BisectOnError   bool     `json:"bisect_on_error,omitempty"`
	// Internal is set on the pipelines sluice creates and runs itself, and
	// says what they do: InternalDeadLetters writes the records of a
	// dead-letter table's internal stream as rows of that table.
	Internal string `json:"internal,omitempty"`
}

// ConsumerGroup is the Kafka consumer group of the pipeline's workers.
func (p *Pipeline) ConsumerGroup() string { return "sluice-pipeline-" + p.Name }

func (s *Stream) normalize() error {
	var errs []error
	if !schemas.ValidName(s.Name) {
		errs = append(errs, fmt.Errorf("stream name %q must be letters, digits and _ (starting with a letter or _)", s.Name))
	}
	if s.Partitions == 0 {
		s.Partitions = DefaultPartitions
	}
	if s.Partitions < 1 || s.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("partitions must be between 1 and %d, got %d", MaxPartitions, s.Partitions))
	}
	if s.Retention == 0 {
		s.Retention = Duration(DefaultRetention)
	}
	if s.Retention < Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("retention must be at least 1m, got %s", time.Duration(s.Retention)))
	}
	return errors.Join(errs...)
}

func (t *Table) normalize() error {
	var errs []error
	if !schemas.ValidName(t.Name) {
		errs = append(errs, fmt.Errorf("table name %q must be letters, digits and _ (starting with a letter or _)", t.Name))
	}
	if err := t.Schema.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("schema: %w", err))
	}
	if t.FileBytes == 0 {
		t.FileBytes = DefaultFileBytes
	}
	if t.FileBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("file_bytes must be at least 1024, got %d", t.FileBytes))
	}
	if t.FileAge == 0 {
		t.FileAge = Duration(DefaultFileAge)
	}
	if t.FileAge < Duration(100*time.Millisecond) {
		errs = append(errs, fmt.Errorf("file_age must be at least 100ms, got %s", time.Duration(t.FileAge)))
	}
	if t.FileIdle == 0 {
		t.FileIdle = min(Duration(DefaultFileIdle), t.FileAge)
	}
	if t.FileIdle < Duration(100*time.Millisecond) || t.FileIdle > t.FileAge {
		errs = append(errs, fmt.Errorf("file_idle must be between 100ms and file_age (%s), got %s", time.Duration(t.FileAge), time.Duration(t.FileIdle)))
	}
	if t.RowGroupRows == 0 {
		t.RowGroupRows = DefaultRowGroup
	}
	if t.RowGroupRows < 1024 || t.RowGroupRows > 10_000_000 {
		errs = append(errs, fmt.Errorf("row_group_rows must be between 1024 and 10000000, got %d", t.RowGroupRows))
	}
	return errors.Join(errs...)
}

func (p *Pipeline) normalize() error {
	var errs []error
	if !schemas.ValidName(p.Name) {
		errs = append(errs, fmt.Errorf("pipeline name %q must be letters, digits and _ (starting with a letter or _)", p.Name))
	}
	if p.BatchSize == 0 {
		p.BatchSize = DefaultBatchSize
	}
	if p.BatchSize < 1 || p.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("batch_size must be between 1 and %d, got %d", MaxBatchSize, p.BatchSize))
	}
	if p.BatchBytes == 0 {
		p.BatchBytes = DefaultBatchBytes
	}
	if p.BatchBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("batch_bytes must be at least 1024, got %d", p.BatchBytes))
	}
	if p.BatchWindow == 0 {
		p.BatchWindow = Duration(DefaultBatchWindow)
	}
	if p.BatchWindow < Duration(time.Millisecond) || p.BatchWindow > Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("batch_window must be between 1ms and 1m, got %s", time.Duration(p.BatchWindow)))
	}
	if p.MaxAttempts < 0 || p.MaxRecordAge < 0 {
		errs = append(errs, errors.New("max_attempts and max_record_age must not be negative (0: retry forever)"))
	}
	return errors.Join(append(errs, p.checkGivingUp()...)...)
}

// checkGivingUp checks the settings for giving up on batches: both or
// neither of a limit and one dead-letter destination.
func (p *Pipeline) checkGivingUp() []error {
	var errs []error
	givesUp := p.MaxAttempts > 0 || p.MaxRecordAge > 0
	switch {
	case p.DeadLetter != "" && p.DeadLetterTable != "":
		errs = append(errs, fmt.Errorf("cannot give records up to both dead_letter stream %q and dead_letter_table %q: keep one (--dead-letter or --dead-letter-table)", p.DeadLetter, p.DeadLetterTable))
	case givesUp && p.DeadLetter == "" && p.DeadLetterTable == "":
		errs = append(errs, errors.New("max_attempts or max_record_age needs a dead_letter stream or a dead_letter_table to keep the records it gives up"))
	}
	if !givesUp && (p.DeadLetter != "" || p.DeadLetterTable != "" || p.BisectOnError) {
		errs = append(errs, errors.New("dead_letter, dead_letter_table and bisect_on_error take effect only with max_attempts or max_record_age"))
	}
	if t := p.DeadLetterTable; t != "" && !schemas.ValidName(DeadLetterStream(t)) {
		errs = append(errs, fmt.Errorf("dead_letter_table name %q must be letters, digits and _ (starting with a letter or _), at most %d of them (its internal stream is named %s<table>)",
			t, 128-len(DeadLetterPrefix), DeadLetterPrefix))
	}
	return errs
}
