package fn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

const (
	pageSize = 64 << 10
	maxPages = 65536 // 4 GiB, the wasm32 maximum
)

// wasmCode is a compiled module and what the host learned from its exports.
type wasmCode struct {
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	mode     string
	hasInit  bool  // exports sluice_init
	hasStart bool  // had a start section, now exported as sluice:start
	limit    int64 // memory limit in bytes
	// interruptible is false only for the benchmarks' uninstrumented modules.
	interruptible bool
}

// memoryPages rounds a memory limit in bytes up to wasm pages; 0 means the maximum.
func memoryPages(mem int64) uint32 {
	if mem <= 0 || mem >= maxPages*pageSize {
		return maxPages
	}
	return uint32((mem + pageSize - 1) / pageSize)
}

// runtime returns the wazero runtime for a memory limit. The limit is a
// runtime setting in wazero, so there is one runtime per distinct limit; they
// share one compilation cache.
func (h *Host) runtime(ctx context.Context, pages uint32) (wazero.Runtime, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	if r, ok := h.runtimes[pages]; ok {
		return r, nil
	}
	// Timeouts are enforced by instrumentation (instrument.go), not by
	// wazero's context checks, which cost 5-7x on Go guests.
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		WithCloseOnContextDone(false).
		WithMemoryLimitPages(pages)
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("cannot instantiate WASI: %w", err)
	}
	h.runtimes[pages] = r
	return r, nil
}

func (h *Host) compileWasm(ctx context.Context, key loadKey, code []byte) (*wasmCode, error) {
	r, err := h.runtime(ctx, key.pages)
	if err != nil {
		return nil, err
	}
	if h.noInterrupt {
		err = CheckModule(code)
	} else {
		code, err = instrument(code) // checks as CheckModule does
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load wasm module: %w", err)
	}
	cm, err := r.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("cannot compile wasm module: %w", err)
	}
	w := &wasmCode{runtime: r, compiled: cm, limit: int64(key.pages) * pageSize, interruptible: !h.noInterrupt}
	if err := w.detect(); err != nil {
		_ = cm.Close(ctx)
		return nil, err
	}
	return w, nil
}

// detect sets the mode from the exports: _start means a command (one-shot);
// otherwise sluice_alloc and sluice_handle with the right signatures mean the
// warm ABI.
func (w *wasmCode) detect() error {
	exports := w.compiled.ExportedFunctions()
	_, w.hasStart = exports[startExport]
	if _, ok := exports["_start"]; ok {
		w.mode = ModeOneShot
		return nil
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := map[string][2][]api.ValueType{
		"sluice_alloc":  {{i32}, {i32}},
		"sluice_handle": {{i32, i32}, {i64}},
	}
	for name, sig := range want {
		def, ok := exports[name]
		if !ok {
			return fmt.Errorf("cannot load wasm module: it exports neither _start (one-shot) nor %s (warm)", name)
		}
		if !bytes.Equal(def.ParamTypes(), sig[0]) || !bytes.Equal(def.ResultTypes(), sig[1]) {
			return fmt.Errorf("cannot load wasm module: %s has the wrong signature", name)
		}
	}
	if len(w.compiled.ExportedMemories()) == 0 {
		return errors.New("cannot load wasm module: it exports sluice_alloc and sluice_handle but no memory to pass batches through")
	}
	if def, ok := exports["sluice_init"]; ok {
		if len(def.ParamTypes()) != 0 || !bytes.Equal(def.ResultTypes(), []api.ValueType{i32}) {
			return errors.New("cannot load wasm module: sluice_init has the wrong signature")
		}
		w.hasInit = true
	}
	w.mode = ModeWarm
	return nil
}

// instantiate creates an instance of the function's module that has run no
// guest code yet, and its interrupter. Run guest code with
// interrupter.arm and startGuest.
func (f *Function) instantiate(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (api.Module, *interrupter, error) {
	in := newInterrupter()
	code := f.wasm
	mod, err := code.runtime.InstantiateModule(ctx, code.compiled, f.moduleConfig(stdin, stdout, stderr, in))
	if err != nil {
		return nil, nil, err
	}
	if code.interruptible {
		if err := in.bind(mod); err != nil {
			_ = mod.Close(context.WithoutCancel(ctx))
			return nil, nil, err
		}
	}
	return mod, in, nil
}

// startGuest runs the module's start function, if it had one, and then the
// WASI entry point (_initialize for a reactor, _start for a command) if
// exported. Call it with the interrupter armed.
func (f *Function) startGuest(ctx context.Context, mod api.Module, entry string) error {
	names := []string{entry}
	if f.wasm.hasStart {
		names = []string{startExport, entry}
	}
	for _, name := range names {
		if fn := mod.ExportedFunction(name); fn != nil {
			if _, err := fn.Call(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// moduleConfig is the sandbox of one instance: no files, no network, real
// clocks, crypto randomness, the function's environment. It runs no start
// functions (see startGuest); sleeps end early on interrupt.
func (f *Function) moduleConfig(stdin io.Reader, stdout, stderr io.Writer, in *interrupter) wazero.ModuleConfig {
	mc := wazero.NewModuleConfig().
		WithStartFunctions().
		WithName("").
		WithArgs("function").
		WithStdin(stdin).
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(in.sleep).
		WithRandSource(rand.Reader)
	keys := make([]string, 0, len(f.cfg.Env))
	for k := range f.cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mc = mc.WithEnv(k, f.cfg.Env[k])
	}
	return mc
}

// wasmFailure classifies an error from running guest code.
func wasmFailure(ctx context.Context, err error, log []byte, mem api.Memory, limit int64) *InvokeError {
	if ctx.Err() != nil {
		return timeoutError(ctx, log)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return timeoutError(ctx, log)
		}
	}
	if outOfMemory(log) || mem != nil && int64(mem.Size())+pageSize >= limit {
		return &InvokeError{Kind: KindMemory, Log: log, Err: fmt.Errorf("memory limit of %d bytes: %w", limit, err)}
	}
	return &InvokeError{Kind: KindTrap, Log: log, Err: err}
}

// outOfMemory recognizes the messages runtimes print when an allocation fails.
func outOfMemory(log []byte) bool {
	for _, s := range []string{"out of memory", "MemoryError", "memory allocation of", "bad_alloc"} {
		if bytes.Contains(log, []byte(s)) {
			return true
		}
	}
	return false
}
