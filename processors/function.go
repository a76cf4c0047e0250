package processors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/processors/fn"
	"github.com/sluice-dev/sluice/processors/fnlog"
	"github.com/sluice-dev/sluice/schemas"
)

// Function runs one partition's batches through a pipeline's function. It
// resolves the function's qualifier ($LATEST, a version or an alias) at every
// batch, so a moved alias or a redeployed $LATEST takes effect at the next
// batch of each partition, without a restart: this is how an operator
// un-sticks a partition whose batch keeps failing. It keeps one warm
// instance for the version in use and replaces it when the version changes.
//
// Output rows are converted strictly: a row that does not fit the table fails
// the batch (naming the row and the column), which is retried like any other
// failure. A row's metadata columns (_partition, _offset, _timestamp, ...)
// come from the last record of the batch that produced it, since a function
// may emit any number of rows per record; a function that wants a row's own
// source offset emits it as a column of its own.
type Function struct {
	Ref    string // name[:qualifier]
	Reg    *deploy.Registry
	Host   *fn.Host
	Schema *schemas.Schema
	// Logs receives each batch's stderr (nil: dropped); Pipeline names the
	// pipeline in its records.
	Logs     *fnlog.Log
	Pipeline string

	current deploy.FunctionConfig
	version string // resolved label of current
	inst    *fn.Instance
	lastLog []byte
}

// Version is the label ($LATEST or N) of the version that ran last.
func (f *Function) Version() string { return f.version }

// LastLog is the stderr tail of the last failed batch.
func (f *Function) LastLog() []byte { return f.lastLog }

func (f *Function) Process(ctx context.Context, b *Batch) ([]schemas.Row, error) {
	if err := f.prepare(ctx); err != nil {
		return nil, &infraError{err}
	}
	res, err := f.inst.Invoke(ctx, envelopes(b))
	if err != nil {
		var ie *fn.InvokeError
		if errors.As(err, &ie) {
			f.lastLog = ie.Log
			f.Logs.Add(f.logSource(b), ie.Log)
		}
		return nil, fmt.Errorf("function %s (version %s) failed on offsets %d..%d: %w", f.Ref, f.version, b.First(), b.Last(), err)
	}
	f.lastLog = nil
	f.Logs.Add(f.logSource(b), res.Log)
	last := b.Records[len(b.Records)-1]
	meta := schemas.Meta{Stream: b.Stream, Partition: b.Partition, Offset: last.Offset, Key: last.Key, Timestamp: last.Timestamp}
	rows := make([]schemas.Row, 0, len(res.Rows))
	for i, out := range res.Rows {
		row, err := f.Schema.Convert(out, meta, schemas.Strict)
		if err != nil {
			return nil, fmt.Errorf("function %s (version %s), offsets %d..%d: output row %d does not fit the table: %w", f.Ref, f.version, b.First(), b.Last(), i, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (f *Function) logSource(b *Batch) fnlog.Source {
	name, _ := deploy.SplitQualifier(f.Ref)
	return fnlog.Source{Function: name, Version: f.version, Pipeline: f.Pipeline, Partition: b.Partition, FirstOffset: b.First(), LastOffset: b.Last()}
}

// prepare resolves the qualifier and, if it names another config than the
// one running, loads it and starts a fresh instance.
func (f *Function) prepare(ctx context.Context) error {
	name, q := deploy.SplitQualifier(f.Ref)
	def, ok := f.Reg.Function(name)
	if !ok {
		return fmt.Errorf("function %q does not exist (deploy it, or fix the pipeline)", name)
	}
	cfg, label, err := def.Resolve(q)
	if err != nil {
		return err
	}
	if f.inst != nil && label == f.version && sameFunctionConfig(cfg, f.current) {
		return nil
	}
	code, err := f.Reg.Code(ctx, cfg.CodeHash)
	if err != nil {
		return err
	}
	loaded, err := f.Host.Load(ctx, fn.Config{Runtime: cfg.Runtime, Code: code, CodeHash: cfg.CodeHash,
		Memory: cfg.Memory, Timeout: time.Duration(cfg.Timeout), Env: cfg.Env})
	if err != nil {
		return fmt.Errorf("cannot load function %s version %s: %w", name, label, err)
	}
	inst, err := loaded.NewInstance(ctx)
	if err != nil {
		return fmt.Errorf("cannot start function %s version %s: %w", name, label, err)
	}
	f.Close()
	f.inst, f.current, f.version = inst, cfg, label
	return nil
}

func sameFunctionConfig(a, b deploy.FunctionConfig) bool {
	return a.CodeHash == b.CodeHash && a.Runtime == b.Runtime && a.Memory == b.Memory &&
		a.Timeout == b.Timeout && fmt.Sprint(a.Env) == fmt.Sprint(b.Env)
}

// Close stops the instance.
func (f *Function) Close() {
	if f.inst != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		f.inst.Close(ctx)
		cancel()
		f.inst = nil
	}
}

func envelopes(b *Batch) []fn.Envelope {
	out := make([]fn.Envelope, len(b.Records))
	for i, r := range b.Records {
		out[i] = fn.Envelope{Stream: b.Stream, Partition: r.Partition, Offset: r.Offset, Key: r.Key,
			Timestamp: r.Timestamp, Headers: r.Headers, Data: r.Value}
	}
	return out
}

// infraError is a failure of the machinery around the batch (the registry,
// the code store, loading the function), not of the batch: it never makes a
// pipeline give up on the batch.
type infraError struct{ error }

func (e *infraError) Unwrap() error { return e.error }

// IsInfrastructure reports whether err is not the batch's own fault.
func IsInfrastructure(err error) bool {
	var ie *infraError
	return errors.As(err, &ie)
}
