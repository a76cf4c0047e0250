package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/sluice-dev/sluice/internal/metrics"
	"github.com/sluice-dev/sluice/processors"
	"github.com/sluice-dev/sluice/query"
	"github.com/sluice-dev/sluice/sink"
)

var _ processors.Observer = (*metrics.Pipelines)(nil)

// watchPipelines points the pipeline metrics at a worker's engine: its
// events, and at each scrape its partitions, pausing and memory budget.
func watchPipelines(m *metrics.Registry, engine *processors.Engine, budget *sink.Budget) {
	engine.Observer = m.Pipelines
	m.Pipelines.SetSource(metrics.Source{
		Partitions: func(ctx context.Context) []metrics.Partition {
			gs := engine.Gauges(ctx)
			out := make([]metrics.Partition, len(gs))
			for i, g := range gs {
				out[i] = metrics.Partition(g)
			}
			return out
		},
		Paused: engine.PausedPipelines,
		Budget: func() (int64, int64) { return budget.Used(), budget.Limit },
	})
}

// observeQueries returns query.Config.Observe for m.
func observeQueries(m *metrics.Registry) func(query.QueryStats) {
	return func(st query.QueryStats) {
		m.Query.Observe(st.Elapsed, st.FilesScanned, st.FilesPruned, st.BytesScanned, st.ErrorKind)
	}
}

// newLogger is the process's logger in --log-format.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
