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
	enc encoder
}

func (o *oneShotInstance) invoke(ctx context.Context, batch []Envelope) (*Result, *InvokeError) {
	if err := o.enc.appendEnvelopes(batch); err != nil {
		return nil, &InvokeError{Kind: KindProtocol, Err: err}
	}
	stdout := &limitWriter{max: MaxOutput}
	code := o.fn.wasm
	mc := o.fn.moduleConfig(bytes.NewReader(o.enc.env), stdout, &o.log)
	mod, err := code.runtime.InstantiateModule(ctx, code.compiled, mc)
	if mod != nil {
		_ = mod.Close(context.WithoutCancel(ctx))
	}
	log := o.log.take()
	o.enc.shrink()
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
