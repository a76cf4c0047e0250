// Package metrics defines every Prometheus metric sluice exposes on
// GET /metrics, in one registry that cmd/sluice wires to the data path:
// ingest and query report through hooks (ingest.Handler.Counted,
// query.Config.Observe), the pipeline engine through processors.Observer
// (Pipelines implements it) and, at scrape time, through a Gauges source.
// Nothing here is global: each process makes one Registry.
//
// Label cardinality is bounded by what the process holds: streams, tables
// and pipelines by the registry (an ingest request for a stream that does
// not exist is counted under stream="_unknown"), per-partition series only
// for the partitions this process owns (deleted when a partition is
// revoked), error kinds and states by fixed lists. README.md, "Metrics",
// lists every metric with its labels.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every metric of one process.
type Registry struct {
	reg       *prometheus.Registry
	Ingest    *Ingest
	Pipelines *Pipelines
	Query     *Query
}

// New makes a registry with the Go runtime and process collectors and
// sluice's own metrics.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), Ingest: newIngest(), Pipelines: newPipelines(), Query: newQuery()}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.Ingest.register(r.reg)
	r.Pipelines.register(r.reg)
	r.Query.register(r.reg)
	return r
}

// Handler serves the metrics in the Prometheus text exposition format (or
// OpenMetrics / protobuf when the scraper asks for them). At most 4 scrapes
// are served at once; more get 503.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 20 * time.Second})
}

// Latency buckets, in seconds: 1 ms to 60 s.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets}, labels)
}

func partitionLabel(p int32) string { return strconv.Itoa(int(p)) }
