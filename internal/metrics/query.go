package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Slots is what the queue gauges read (a *query.Engine).
type Slots interface {
	Waiting() int64
	Running() int
}

// Query holds the query engine's metrics (HTTP and Postgres together).
type Query struct {
	queries  prometheus.Counter
	errors   *prometheus.CounterVec
	duration prometheus.Histogram
	files    prometheus.Counter
	pruned   prometheus.Counter
	bytes    prometheus.Counter
	queue    prometheus.GaugeFunc
	running  prometheus.GaugeFunc
	slots    Slots
}

func newQuery() *Query {
	m := &Query{
		queries: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_queries_total", Help: "Queries run (HTTP and Postgres), failed ones included."}),
		errors:  counterVec("sluice_query_errors_total", "Failed queries, by kind: timeout, forbidden, out_of_memory, rate_limited, user, server.", "kind"),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_query_duration_seconds",
			Help: "Query latency, queueing for a slot included.", Buckets: latencyBuckets}),
		files:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_query_files_scanned_total", Help: "Table files handed to DuckDB by queries."}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_query_files_pruned_total", Help: "Table files that queries' predicates ruled out before any was opened."}),
		bytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_query_bytes_scanned_total", Help: "Bytes of the table files handed to DuckDB by queries."}),
	}
	m.queue = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_query_queue_length", Help: "Queries waiting for one of the --query-concurrency slots."}, func() float64 {
		if m.slots != nil {
			return float64(m.slots.Waiting())
		}
		return 0
	})
	m.running = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_queries_running", Help: "Queries holding a slot."}, func() float64 {
		if m.slots != nil {
			return float64(m.slots.Running())
		}
		return 0
	})
	return m
}

func (m *Query) register(reg *prometheus.Registry) {
	reg.MustRegister(m.queries, m.errors, m.duration, m.files, m.pruned, m.bytes, m.queue, m.running)
}

// Observe counts one query (query.Config.Observe); errorKind "": it
// succeeded.
func (m *Query) Observe(elapsed time.Duration, filesScanned, filesPruned int, bytesScanned int64, errorKind string) {
	m.queries.Inc()
	m.duration.Observe(elapsed.Seconds())
	m.files.Add(float64(filesScanned))
	m.pruned.Add(float64(filesPruned))
	m.bytes.Add(float64(bytesScanned))
	if errorKind != "" {
		m.errors.WithLabelValues(errorKind).Inc()
	}
}

// Watch makes the queue gauges read slots, and shows every error kind (at
// 0 until one happens). Call it once, before serving.
func (m *Query) Watch(slots Slots, errorKinds []string) {
	m.slots = slots
	for _, kind := range errorKinds {
		m.errors.WithLabelValues(kind)
	}
}
