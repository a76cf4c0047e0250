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
	limit    int64 // memory limit in bytes
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
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		WithCloseOnContextDone(!h.noTermination).
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
	cm, err := r.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("cannot compile wasm module: %w", err)
	}
	w := &wasmCode{runtime: r, compiled: cm, limit: int64(key.pages) * pageSize}
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
	if def, ok := exports["sluice_init"]; ok {
		if len(def.ParamTypes()) != 0 || !bytes.Equal(def.ResultTypes(), []api.ValueType{i32}) {
			return errors.New("cannot load wasm module: sluice_init has the wrong signature")
		}
		w.hasInit = true
	}
	w.mode = ModeWarm
	return nil
}

// moduleConfig is the sandbox of one instance: no files, no network, real
// clocks, crypto randomness, the function's environment.
func (f *Function) moduleConfig(stdin io.Reader, stdout, stderr io.Writer) wazero.ModuleConfig {
	mc := wazero.NewModuleConfig().
		WithName("").
		WithArgs("function").
		WithStdin(stdin).
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
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
