package fn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

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
	err := o.run(ctx, stdout)
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

// run runs the command once, interrupted when ctx ends; exit code 0 is
// success.
func (o *oneShotInstance) run(ctx context.Context, stdout io.Writer) error {
	mod, intr, err := o.fn.instantiate(ctx, bytes.NewReader(o.enc.env), stdout, &o.log)
	if err != nil {
		return err
	}
	defer mod.Close(context.WithoutCancel(ctx))
	disarm := intr.arm(ctx)
	defer disarm()
	err = o.fn.startGuest(ctx, mod, "_start")
	if exit := (*sys.ExitError)(nil); errors.As(err, &exit) && exit.ExitCode() == 0 {
		return nil
	}
	return err
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
