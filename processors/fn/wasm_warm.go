package fn

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/api"
)

// warmInstance keeps one module instance and calls its exports per batch
// (docs/functions.md, "Warm wasm ABI").
type warmInstance struct {
	fn     *Function
	mod    api.Module // nil until started, and after a failure
	mem    api.Memory
	alloc  api.Function
	handle api.Function
	intr   *interrupter
	log    tail
	enc    encoder
	stack  [2]uint64
}

// start instantiates the module, runs _initialize and calls sluice_init, all
// interrupted when ctx ends.
func (w *warmInstance) start(ctx context.Context) *InvokeError {
	code := w.fn.wasm
	mod, intr, err := w.fn.instantiate(ctx, bytes.NewReader(nil), &w.log, &w.log)
	if err != nil {
		return wasmFailure(ctx, fmt.Errorf("cannot start wasm module: %w", err), w.log.take(), nil, code.limit)
	}
	w.mod, w.mem, w.intr = mod, mod.Memory(), intr
	w.alloc, w.handle = mod.ExportedFunction("sluice_alloc"), mod.ExportedFunction("sluice_handle")
	if w.mem == nil {
		w.discard(ctx)
		return protocolError("wasm module exports no memory")
	}
	disarm := intr.arm(ctx)
	defer disarm()
	if err := w.fn.startGuest(ctx, mod, "_initialize"); err != nil {
		return w.fail(ctx, fmt.Errorf("cannot start wasm module: %w", err))
	}
	if code.hasInit {
		res, err := mod.ExportedFunction("sluice_init").Call(ctx)
		if err != nil {
			return w.fail(ctx, fmt.Errorf("cannot initialize wasm module: %w", err))
		}
		if int32(res[0]) != 0 {
			log := w.log.take()
			w.discard(ctx)
			return &InvokeError{Kind: KindError, Log: log, Err: fmt.Errorf("sluice_init returned %d", int32(res[0]))}
		}
	}
	return nil
}

func (w *warmInstance) invoke(ctx context.Context, batch []Envelope) (*Result, *InvokeError) {
	if w.mod == nil {
		if ierr := w.start(ctx); ierr != nil {
			return nil, ierr
		}
	}
	frame, err := w.enc.encodeFrame(batch)
	if err != nil {
		return nil, &InvokeError{Kind: KindProtocol, Err: err}
	}
	intr := w.intr
	disarm := intr.arm(ctx)
	out, ierr := w.call(ctx, frame)
	disarm()
	w.enc.shrink()
	if ierr != nil {
		return nil, ierr
	}
	if intr.fired() {
		// The deadline passed as the batch finished: its result stands, but the
		// instance's interrupt flag is set for good.
		w.discard(ctx)
	}
	rows, ierr := parseRows(out, true, len(batch))
	log := w.log.take()
	if ierr != nil {
		ierr.Log = log
		w.discard(ctx)
		return nil, ierr
	}
	return &Result{Rows: rows, Log: log}, nil
}

// call passes one frame through sluice_alloc and sluice_handle and returns a
// copy of the response.
func (w *warmInstance) call(ctx context.Context, frame []byte) ([]byte, *InvokeError) {
	if uint64(len(frame)) > 1<<31 {
		return nil, protocolError("batch of %d bytes is too large for wasm", len(frame))
	}
	w.stack[0] = uint64(len(frame))
	if err := w.alloc.CallWithStack(ctx, w.stack[:]); err != nil {
		return nil, w.fail(ctx, err)
	}
	ptr := uint32(w.stack[0])
	if !w.mem.Write(ptr, frame) {
		return nil, w.protocolFail(ctx, "sluice_alloc returned a buffer outside memory")
	}
	w.stack[0], w.stack[1] = uint64(ptr), uint64(len(frame))
	if err := w.handle.CallWithStack(ctx, w.stack[:]); err != nil {
		return nil, w.fail(ctx, err)
	}
	outPtr, outLen := uint32(w.stack[0]>>32), uint32(w.stack[0])
	if outLen > MaxOutput {
		return nil, w.protocolFail(ctx, "output exceeds the limit")
	}
	view, ok := w.mem.Read(outPtr, outLen)
	if !ok {
		return nil, w.protocolFail(ctx, "sluice_handle returned a buffer outside memory")
	}
	return bytes.Clone(view), nil
}

// fail classifies a failed call and discards the instance.
func (w *warmInstance) fail(ctx context.Context, err error) *InvokeError {
	ierr := wasmFailure(ctx, err, w.log.take(), w.mem, w.fn.wasm.limit)
	w.discard(ctx)
	return ierr
}

func (w *warmInstance) protocolFail(ctx context.Context, msg string) *InvokeError {
	ierr := &InvokeError{Kind: KindProtocol, Log: w.log.take(), Err: errors.New(msg)}
	w.discard(ctx)
	return ierr
}

func (w *warmInstance) discard(ctx context.Context) {
	if w.mod != nil {
		_ = w.mod.Close(context.WithoutCancel(ctx))
	}
	w.mod, w.mem, w.alloc, w.handle, w.intr = nil, nil, nil, nil, nil
}

func (w *warmInstance) close(ctx context.Context) error {
	w.discard(ctx)
	return nil
}
