package deploy

import (
	"context"
	"time"
)

// Partition states shown in a pipeline's status.
const (
	StateRunning  = "running"
	StateRetrying = "retrying"
	// StatePaused: the pipeline is paused; its progress is held.
	StatePaused = "paused"
	// StateUnassigned: no live worker holds the partition (a rebalance is in
	// progress, or no worker runs).
	StateUnassigned = "unassigned"
	// StateStopped: the worker stopped on an error retrying cannot fix
	// (last_error says what to do).
	StateStopped = "stopped"
)

// PartitionStatus is what an operator sees of one partition of a pipeline.
type PartitionStatus struct {
	Partition int32     `json:"partition"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
	// Committed is the next offset to be written to the table: everything
	// below it is durable there.
	Committed int64 `json:"committed"`
	EndOffset int64 `json:"end_offset"`
	Lag       int64 `json:"lag"`
	// OldestUnprocessed is the Kafka timestamp of the oldest record fetched
	// but not yet processed (the first of the batch in flight, else the
	// first one waiting), nil when the partition is caught up; LagAgeSeconds
	// is its age when the status was read (0: caught up). They are the
	// metric sluice_partition_lag_seconds, like Lambda's IteratorAge.
	OldestUnprocessed *time.Time `json:"oldest_unprocessed,omitempty"`
	LagAgeSeconds     float64    `json:"lag_age_seconds"`
	// FunctionVersion is the version ($LATEST or N) that ran last; Stderr
	// is the tail of its log from the last failed batch.
	FunctionVersion string `json:"function_version,omitempty"`
	Stderr          string `json:"stderr,omitempty"`
	// GivenUp counts batches (or bisected parts) sent to the dead-letter
	// stream since this worker took the partition.
	GivenUp int `json:"given_up,omitempty"`
	// Worker is the group instance ID of the worker that owns (or last
	// owned) the partition.
	Worker string `json:"worker,omitempty"`
}

// LogSource is where a batch's function log came from (and when).
type LogSource struct {
	Time        time.Time `json:"time"`
	Function    string    `json:"function"`
	Version     string    `json:"version"`
	Pipeline    string    `json:"pipeline,omitempty"`
	Partition   int32     `json:"partition"`
	FirstOffset int64     `json:"first_offset"`
	LastOffset  int64     `json:"last_offset"`
}

// LogLine is one line a function wrote, with where it came from.
type LogLine struct {
	LogSource
	Line string `json:"line"`
}

// StatusReporter reports every partition of a pipeline (processors.Engine:
// from any process, workers or not).
type StatusReporter interface {
	Status(ctx context.Context, pipeline string) ([]PartitionStatus, error)
}

// LogReader returns a function's last log lines, only those after since if
// it is not zero (processors/fnlog.Log).
type LogReader interface {
	Tail(ctx context.Context, function string, limit int, since time.Time) ([]LogLine, error)
}
