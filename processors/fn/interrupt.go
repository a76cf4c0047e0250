package fn

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// interrupter stops one module instance's guest (instrument.go explains the
// mechanism): fire sets the instance's "sluice:interrupt" global, so the
// guest traps at its next check (within checkInterval loop iterations or
// calls), and wakes it if it sleeps in poll_oneoff. An instance is
// interrupted at most once and then discarded.
type interrupter struct {
	flag api.MutableGlobal // nil for an uninstrumented module (benchmarks only)
	once sync.Once
	wake chan struct{} // closed by fire
}

func newInterrupter() *interrupter {
	return &interrupter{wake: make(chan struct{})}
}

// bind finds the interrupt global of a freshly instantiated module.
func (in *interrupter) bind(mod api.Module) error {
	g, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
	if !ok {
		return errors.New("wasm module has no interrupt global (it was not instrumented)")
	}
	in.flag = g
	return nil
}

func (in *interrupter) fire() {
	in.once.Do(func() {
		if in.flag != nil {
			in.flag.Set(1)
		}
		close(in.wake)
	})
}

// fired reports whether the instance was interrupted.
func (in *interrupter) fired() bool {
	select {
	case <-in.wake:
		return true
	default:
		return false
	}
}

// arm interrupts the guest when ctx ends, until disarm is called. After
// disarm returns, fired no longer changes unless arm is called again: a
// deadline that passes during disarm has either interrupted or will not.
func (in *interrupter) arm(ctx context.Context) (disarm func()) {
	stop := context.AfterFunc(ctx, in.fire)
	return func() {
		if !stop() {
			<-in.wake // fire has started: wait for it to finish
		}
	}
}

// sleep is the instance's WASI nanosleep (poll_oneoff with a clock): it
// returns early when the instance is interrupted, so that a sleeping guest
// reaches a check and traps.
func (in *interrupter) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.wake:
	}
}
