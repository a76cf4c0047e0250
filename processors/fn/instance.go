package fn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Instance runs one (function version, partition)'s batches, one at a time.
type Instance struct {
	mu      sync.Mutex
	impl    instanceImpl
	timeout time.Duration
	closed  bool
	release func() // gives back the instance's memory reservation
}

type instanceImpl interface {
	// invoke runs one non-empty batch under ctx (which carries the timeout). On
	// failure it has already discarded the guest.
	invoke(ctx context.Context, batch []Envelope) (*Result, *InvokeError)
	close(ctx context.Context) error
}

var errInstanceClosed = errors.New("function instance is closed")

// Invoke runs one batch and returns its rows, in order. Calls are serialized:
// do not overlap them (the engine runs one batch per partition at a time). An
// empty batch returns an empty Result without running the guest. Every failure
// of the batch is an *InvokeError; the guest that failed is gone and the next
// call starts a fresh one. The batch is not retained after Invoke returns.
func (i *Instance) Invoke(ctx context.Context, batch []Envelope) (*Result, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, errInstanceClosed
	}
	if len(batch) == 0 {
		return &Result{}, nil
	}
	if i.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, i.timeout)
		defer cancel()
	}
	res, ierr := i.impl.invoke(ctx, batch)
	if ierr != nil {
		return nil, ierr
	}
	return res, nil
}

// Close stops the guest, if one is running, and frees the instance. It waits
// for an Invoke in progress (cancel that call's context to cut it short).
func (i *Instance) Close(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	if i.release != nil {
		defer i.release()
	}
	if err := i.impl.close(ctx); err != nil {
		return fmt.Errorf("cannot close function instance: %w", err)
	}
	return nil
}

// timeoutError reports a batch stopped because ctx ended.
func timeoutError(ctx context.Context, log []byte) *InvokeError {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("batch did not finish in time: %w", err)
	}
	return &InvokeError{Kind: KindTimeout, Log: log, Err: err}
}
