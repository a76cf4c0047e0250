package fn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
)

// Host compiles, caches and runs functions. Make one per process; it is safe
// for concurrent use.
type Host struct {
	// AllowExec enables the exec runtime; without it an exec function
	// fails to load (the server's --allow-exec).
	AllowExec bool
	// MemoryLimit bounds the memory all instances may use together
	// (--function-memory; 0: no bound). Each instance reserves its
	// Reservation when it is made, and gives it back at Close; one that
	// does not fit fails with ErrNoFunctionMemory (its partition retries).
	MemoryLimit int64

	cacheDir string
	cache    wazero.CompilationCache
	// noInterrupt, for benchmarks only, compiles modules as they are, without
	// the interrupt checks (a timeout then cannot stop the guest): it measures
	// what the checks cost.
	noInterrupt bool

	mu       sync.Mutex
	closed   bool
	runtimes map[uint32]wazero.Runtime // by memory limit in pages
	loads    map[loadKey]*loadEntry
	execs    map[*execInstance]struct{} // live exec instances, stopped by Close
	reserved int64                      // by live instances, of MemoryLimit
}

type loadKey struct {
	runtime string
	hash    string
	pages   uint32
}

// loadEntry is one compilation, shared by concurrent Loads of the same code.
type loadEntry struct {
	done     chan struct{}
	wasm     *wasmCode
	execPath string
	err      error
}

var errClosed = errors.New("function host is closed")

// ErrExecDisabled is the error of loading an exec function on a host
// without AllowExec.
var ErrExecDisabled = errors.New("cannot load exec function: the exec runtime is off on this worker (start it with --allow-exec)")

// NewHost returns a Host that keeps its caches under cacheDir: wazero's
// compilation cache (so a restart does not compile again) in cacheDir/wazero
// and exec code files in cacheDir/exec.
func NewHost(ctx context.Context, cacheDir string) (*Host, error) {
	// Absolute: exec processes run in a working directory of their own, where
	// a relative path (the default ./sluice-data) would name nothing.
	abs, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("cannot create function cache: %w", err)
	}
	cacheDir = abs
	if err := os.MkdirAll(filepath.Join(cacheDir, "exec"), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create function cache: %w", err)
	}
	cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(cacheDir, "wazero"))
	if err != nil {
		return nil, fmt.Errorf("cannot open wasm compilation cache: %w", err)
	}
	return &Host{
		cacheDir: cacheDir,
		cache:    cache,
		runtimes: map[uint32]wazero.Runtime{},
		loads:    map[loadKey]*loadEntry{},
		execs:    map[*execInstance]struct{}{},
	}, nil
}

// Close kills every exec process still running and releases compiled code.
// Instances fail afterwards; Close them to remove their temporary directories.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	execs := h.execs
	h.execs = nil
	runtimes := h.runtimes
	h.mu.Unlock()
	for e := range execs {
		e.abort()
	}
	var errs []error
	for _, r := range runtimes {
		errs = append(errs, r.Close(ctx))
	}
	errs = append(errs, h.cache.Close(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot close function host: %w", err)
	}
	return nil
}

// Load prepares a function version: it compiles a wasm module once per
// (CodeHash, memory limit), or writes an exec file once per CodeHash, and is
// quick for code already loaded. The Function keeps cfg (without Code).
func (h *Host) Load(ctx context.Context, cfg Config) (*Function, error) {
	key := loadKey{runtime: cfg.Runtime, hash: cfg.CodeHash}
	switch cfg.Runtime {
	case RuntimeWasm:
		key.pages = memoryPages(cfg.Memory)
	case RuntimeExec:
		if !h.AllowExec {
			return nil, ErrExecDisabled
		}
	default:
		return nil, fmt.Errorf("cannot load function: unknown runtime %q", cfg.Runtime)
	}
	if key.hash == "" {
		key.hash = hashCode(cfg.Code)
	}
	e, err := h.load(ctx, key, cfg.Code)
	if err != nil {
		return nil, err
	}
	cfg.Code, cfg.CodeHash = nil, key.hash
	f := &Function{host: h, cfg: cfg, wasm: e.wasm, execPath: e.execPath, mode: ModeWarm}
	if e.wasm != nil {
		f.mode = e.wasm.mode
	}
	return f, nil
}

func (h *Host) load(ctx context.Context, key loadKey, code []byte) (*loadEntry, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	e, ok := h.loads[key]
	if !ok {
		e = &loadEntry{done: make(chan struct{})}
		h.loads[key] = e
	}
	h.mu.Unlock()
	if ok {
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot load function: %w", ctx.Err())
		}
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	}
	e.err = h.compile(ctx, key, code, e)
	if e.err != nil {
		h.mu.Lock()
		delete(h.loads, key) // let a later Load try again
		h.mu.Unlock()
	}
	close(e.done)
	return e, e.err
}

func (h *Host) compile(ctx context.Context, key loadKey, code []byte, e *loadEntry) error {
	if got := hashCode(code); got != key.hash {
		return fmt.Errorf("cannot load function: code hash is %s, config says %s", got, key.hash)
	}
	var err error
	if key.runtime == RuntimeWasm {
		e.wasm, err = h.compileWasm(ctx, key, code)
	} else {
		e.execPath, err = h.writeExec(key.hash, code)
	}
	return err
}

// writeExec stores code as an executable file named by its hash.
func (h *Host) writeExec(hash string, code []byte) (string, error) {
	path := filepath.Join(h.cacheDir, "exec", hash)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), hash+".tmp*")
	if err != nil {
		return "", fmt.Errorf("cannot write function code: %w", err)
	}
	_, err = tmp.Write(code)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("cannot write function code: %w", err)
	}
	return path, nil
}

func hashCode(code []byte) string {
	sum := sha256.Sum256(code)
	return hex.EncodeToString(sum[:])
}

// Function is one loaded function version. Safe for concurrent use.
type Function struct {
	host     *Host
	cfg      Config
	mode     string
	wasm     *wasmCode
	execPath string
}

// Mode reports ModeWarm or ModeOneShot. A wasm module is warm if it is a
// reactor exporting sluice_alloc and sluice_handle, one-shot if it exports
// _start; exec functions are always warm.
func (f *Function) Mode() string { return f.mode }

// Config returns the function's configuration (without Code).
func (f *Function) Config() Config { return f.cfg }

// NewInstance returns an instance for one (function version, partition). It
// starts nothing: the guest starts at the first Invoke, and again after any
// failure.
func (f *Function) NewInstance(ctx context.Context) (*Instance, error) {
	release, err := f.host.reserve(f.Reservation())
	if err != nil {
		return nil, err
	}
	inst, err := f.newInstance()
	if err != nil {
		release()
		return nil, err
	}
	inst.release = release
	return inst, nil
}

// Reservation is what one instance of f reserves of the host's
// MemoryLimit: a wasm module's memory limit; an exec process's memory
// limit plus the most output of a batch that is read (MaxOutput).
func (f *Function) Reservation() int64 {
	if f.wasm != nil {
		return int64(memoryPages(f.cfg.Memory)) * pageSize
	}
	return max(f.cfg.Memory, 0) + MaxOutput
}

// ErrNoFunctionMemory wraps the error of an instance that does not fit the
// host's MemoryLimit.
var ErrNoFunctionMemory = errors.New("not enough function memory")

func (h *Host) reserve(n int64) (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.MemoryLimit > 0 && h.reserved+n > h.MemoryLimit {
		if n > h.MemoryLimit {
			return nil, fmt.Errorf("%w: one instance needs %d bytes, over --function-memory %d: lower the function's --memory or raise --function-memory", ErrNoFunctionMemory, n, h.MemoryLimit)
		}
		return nil, fmt.Errorf("%w: an instance needs %d bytes and %d of --function-memory %d are reserved by the other instances; it is tried again", ErrNoFunctionMemory, n, h.reserved, h.MemoryLimit)
	}
	h.reserved += n
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.reserved -= n
			h.mu.Unlock()
		})
	}, nil
}

// Reserved is the memory live instances reserve now.
func (h *Host) Reserved() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reserved
}

func (f *Function) newInstance() (*Instance, error) {
	var impl instanceImpl
	switch {
	case f.wasm != nil && f.mode == ModeWarm:
		impl = &warmInstance{fn: f}
	case f.wasm != nil:
		impl = &oneShotInstance{fn: f}
	default:
		e := &execInstance{fn: f}
		if err := f.host.track(e); err != nil {
			return nil, err
		}
		impl = e
	}
	return &Instance{impl: impl, timeout: f.cfg.Timeout}, nil
}

func (h *Host) track(e *execInstance) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errClosed
	}
	h.execs[e] = struct{}{}
	return nil
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *Host) untrack(e *execInstance) {
	h.mu.Lock()
	delete(h.execs, e)
	h.mu.Unlock()
}
