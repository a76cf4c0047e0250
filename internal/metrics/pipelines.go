package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// States are the values of sluice_partition_state's state label: every
// owned partition has one series per state, 1 for the one it is in.
var States = []string{"running", "retrying", "paused", "stopped", "unassigned"}

// Partition is one partition this process owns, as a scrape reads it
// (the same fields as processors.PartitionGauges, which converts to it).
type Partition struct {
	Pipeline, Stream, Table string
	Partition               int32
	State                   string
	Attempts                int
	LagRecords              int64 // -1: unknown
	Oldest                  time.Time
	BufferedRows            int64
	Unflushed               time.Time
}

// Source is what a scrape reads from the pipeline engine; any field may be
// nil (a process without the worker role has no partitions).
type Source struct {
	Partitions func(ctx context.Context) []Partition
	// Paused tells, per pipeline of the registry, whether it is paused.
	Paused func() map[string]bool
	// Budget is the sink's memory budget: bytes buffered, and the limit.
	Budget func() (used, limit int64)
}

// Pipelines holds the metrics of the pipelines this process runs. It
// implements processors.Observer for the events, and collects the
// partitions' gauges from Source at each scrape.
type Pipelines struct {
	src Source

	attempts, failures            *prometheus.CounterVec
	recordsIn, recordsOut, dlq    *prometheus.CounterVec
	batchDuration, fnDuration     *prometheus.HistogramVec
	files, bytes, compactions     *prometheus.CounterVec
	compacted                     *prometheus.CounterVec
	flushDuration                 *prometheus.HistogramVec
	state, attemptsNow, lag, age  *prometheus.Desc
	rowsBuffered, unflushed       *prometheus.Desc
	budgetUsed, budgetLimit, paus *prometheus.Desc
}

func newPipelines() *Pipelines {
	part := []string{"pipeline", "stream", "partition"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Pipelines{
		attempts:      counterVec("sluice_batch_attempts_total", "Attempts at batches (first tries and retries), per owned partition.", "pipeline", "partition"),
		failures:      counterVec("sluice_batch_failures_total", "Failed attempts at batches, per owned partition.", "pipeline", "partition"),
		recordsIn:     counterVec("sluice_records_in_total", "Records of batches done (written or given up), per owned partition.", "pipeline", "partition"),
		recordsOut:    counterVec("sluice_records_out_total", "Rows the processor made of them (added to the table), per owned partition.", "pipeline", "partition"),
		dlq:           counterVec("sluice_records_dead_lettered_total", "Records given up and sent to the dead-letter destination, per owned partition.", "pipeline", "partition"),
		batchDuration: histogramVec("sluice_batch_duration_seconds", "One attempt at a batch: the processor plus adding its rows to the sink.", "pipeline"),
		fnDuration:    histogramVec("sluice_function_duration_seconds", "The processor's part of an attempt (the function call; a direct pipeline's conversion).", "pipeline"),
		files:         counterVec("sluice_table_files_written_total", "Parquet files written by flushes (compaction not included).", "table"),
		bytes:         counterVec("sluice_table_bytes_written_total", "Bytes of the Parquet files written by flushes.", "table"),
		flushDuration: histogramVec("sluice_table_flush_duration_seconds", "A flush of one partition's rows: encode, upload, commit (retries included).", "table"),
		compactions:   counterVec("sluice_table_compactions_total", "Compaction passes that merged files.", "table"),
		compacted:     counterVec("sluice_table_files_compacted_total", "Files merged away by compaction.", "table"),
		state:         desc("sluice_partition_state", "1 for the state the owned partition is in (label state), 0 for the others.", append(part, "state")...),
		attemptsNow:   desc("sluice_partition_attempts", "Failed attempts at the batch in flight (0: not failing).", part...),
		lag:           desc("sluice_partition_lag_records", "The stream partition's end offset minus the offset committed to the table (as `pipeline status` shows).", part...),
		age:           desc("sluice_partition_lag_seconds", "Age of the oldest record fetched but not processed (its Kafka timestamp), like Lambda's IteratorAge; 0 when caught up.", part...),
		rowsBuffered:  desc("sluice_table_rows_buffered", "Rows buffered for the table by the partitions this process owns, not yet flushed.", "table"),
		unflushed:     desc("sluice_table_oldest_unflushed_seconds", "Age of the oldest record (its Kafka timestamp) behind rows buffered for the table; 0: none.", "table"),
		budgetUsed:    desc("sluice_memory_budget_used_bytes", "Bytes buffered by all pipelines (and merged by compactions) against --memory-budget."),
		budgetLimit:   desc("sluice_memory_budget_limit_bytes", "--memory-budget."),
		paus:          desc("sluice_pipeline_paused", "1 if the pipeline is paused, else 0 (workers only).", "pipeline"),
	}
}

func (m *Pipelines) register(reg *prometheus.Registry) {
	reg.MustRegister(m.attempts, m.failures, m.recordsIn, m.recordsOut, m.dlq, m.batchDuration, m.fnDuration,
		m.files, m.bytes, m.flushDuration, m.compactions, m.compacted, m)
}

// SetSource sets what scrapes read; call it once, before serving.
func (m *Pipelines) SetSource(src Source) { m.src = src }

// Describe implements prometheus.Collector for the scrape-time gauges.
func (m *Pipelines) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.state, m.attemptsNow, m.lag, m.age, m.rowsBuffered, m.unflushed, m.budgetUsed, m.budgetLimit, m.paus} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the gauges of the partitions
// this process owns, their tables, the memory budget and pausing.
func (m *Pipelines) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if m.src.Partitions != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		parts := m.src.Partitions(ctx)
		cancel()
		now := time.Now()
		rows, oldest := map[string]int64{}, map[string]float64{}
		for _, p := range parts {
			l := []string{p.Pipeline, p.Stream, partitionLabel(p.Partition)}
			for _, s := range States {
				gauge(m.state, boolValue(p.State == s), append(l, s)...)
			}
			gauge(m.attemptsNow, float64(p.Attempts), l...)
			if p.LagRecords >= 0 {
				gauge(m.lag, float64(p.LagRecords), l...)
			}
			gauge(m.age, ageOf(p.Oldest, now), l...)
			rows[p.Table] += p.BufferedRows
			oldest[p.Table] = max(oldest[p.Table], ageOf(p.Unflushed, now))
		}
		for t, n := range rows {
			gauge(m.rowsBuffered, float64(n), t)
			gauge(m.unflushed, oldest[t], t)
		}
	}
	if m.src.Budget != nil {
		used, limit := m.src.Budget()
		gauge(m.budgetUsed, float64(used))
		gauge(m.budgetLimit, float64(limit))
	}
	if m.src.Paused != nil {
		for p, paused := range m.src.Paused() {
			gauge(m.paus, boolValue(paused), p)
		}
	}
}

// ageOf is how old t is at now in seconds; 0 for a zero t or one in the
// future (a producer's clock ahead of ours).
func ageOf(t, now time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(now.Sub(t).Seconds(), 0)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// The processors.Observer methods.

// PartitionStarted makes the partition's counters, and its table's, show
// at 0.
func (m *Pipelines) PartitionStarted(pipeline, table string, partition int32) {
	for _, v := range m.partitionVecs() {
		v.WithLabelValues(pipeline, partitionLabel(partition))
	}
	for _, v := range []*prometheus.CounterVec{m.files, m.bytes, m.compactions, m.compacted} {
		v.WithLabelValues(table)
	}
	m.flushDuration.WithLabelValues(table)
}

// PartitionStopped deletes the partition's counters: this process does not
// own it any more (bounded cardinality; a new owner starts them at 0,
// which rate() reads as a counter reset).
func (m *Pipelines) PartitionStopped(pipeline string, partition int32) {
	for _, v := range m.partitionVecs() {
		v.DeleteLabelValues(pipeline, partitionLabel(partition))
	}
}

func (m *Pipelines) partitionVecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{m.attempts, m.failures, m.recordsIn, m.recordsOut, m.dlq}
}

// Attempt counts one attempt at a batch and its durations.
func (m *Pipelines) Attempt(pipeline string, partition int32, fn, total time.Duration, err error) {
	p := partitionLabel(partition)
	m.attempts.WithLabelValues(pipeline, p).Inc()
	if err != nil {
		m.failures.WithLabelValues(pipeline, p).Inc()
	}
	m.fnDuration.WithLabelValues(pipeline).Observe(fn.Seconds())
	m.batchDuration.WithLabelValues(pipeline).Observe(total.Seconds())
}

// Processed counts a batch done.
func (m *Pipelines) Processed(pipeline string, partition int32, in, out, deadLettered int) {
	p := partitionLabel(partition)
	m.recordsIn.WithLabelValues(pipeline, p).Add(float64(in))
	m.recordsOut.WithLabelValues(pipeline, p).Add(float64(out))
	m.dlq.WithLabelValues(pipeline, p).Add(float64(deadLettered))
}

// Flushed counts one flush into table.
func (m *Pipelines) Flushed(table string, files int, bytes int64, took time.Duration) {
	m.files.WithLabelValues(table).Add(float64(files))
	m.bytes.WithLabelValues(table).Add(float64(bytes))
	m.flushDuration.WithLabelValues(table).Observe(took.Seconds())
}

// Compacted counts one compaction pass that merged files of table.
func (m *Pipelines) Compacted(table string, merged int) {
	m.compactions.WithLabelValues(table).Inc()
	m.compacted.WithLabelValues(table).Add(float64(merged))
}
