package fn

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/sys"
)

var errOutputTooLarge = errors.New("output exceeds the limit")

// oneShotInstance runs a fresh instance of a WASI command per batch: the
// envelopes on stdin until EOF, rows on stdout, exit code 0 for success.
type oneShotInstance struct {
	fn  *Function
	log tail
	in  []byte
}

func (o *oneShotInstance) invoke(ctx context.Context, batch []Envelope) (*Result, *InvokeError) {
	var err error
	if o.in, err = appendEnvelopes(o.in[:0], batch); err != nil {
		return nil, &InvokeError{Kind: KindProtocol, Err: err}
	}
	stdout := &limitWriter{max: MaxOutput}
	code := o.fn.wasm
	mc := o.fn.moduleConfig(bytes.NewReader(o.in), stdout, &o.log)
	mod, err := code.runtime.InstantiateModule(ctx, code.compiled, mc)
	if mod != nil {
		_ = mod.Close(context.WithoutCancel(ctx))
	}
	log := o.log.take()
	if cap(o.in) > 64<<20 {
		o.in = nil
	}
	if err != nil {
		return nil, o.failure(ctx, err, log, stdout.overflow)
	}
	if stdout.overflow {
		return nil, &InvokeError{Kind: KindProtocol, Log: log, Err: errOutputTooLarge}
	}
	rows, ierr := parseRows(stdout.b, false, len(batch))
	if ierr != nil {
		ierr.Log = log
		return nil, ierr
	}
	return &Result{Rows: rows, Log: log}, nil
}

func (o *oneShotInstance) failure(ctx context.Context, err error, log []byte, overflow bool) *InvokeError {
	var exit *sys.ExitError
	switch {
	case ctx.Err() != nil:
		return timeoutError(ctx, log)
	case overflow:
		return &InvokeError{Kind: KindProtocol, Log: log, Err: errOutputTooLarge}
	case outOfMemory(log):
		return &InvokeError{Kind: KindMemory, Log: log, Err: err}
	case errors.As(err, &exit):
		return &InvokeError{Kind: KindError, Log: log, Err: fmt.Errorf("module exited with code %d", exit.ExitCode())}
	}
	return wasmFailure(ctx, err, log, nil, o.fn.wasm.limit)
}

func (o *oneShotInstance) close(context.Context) error { return nil }
