// Package fn runs processor functions: WebAssembly modules (runtime "wasm",
// through wazero, WASI preview1) and trusted executables (runtime "exec").
//
// The engine loads a function version once (Host.Load), creates one Instance
// per (function version, partition) and hands it the partition's batches in
// offset order, one at a time (Instance.Invoke). The wire formats are specified
// in docs/functions.md.
//
// Contracts:
//
//   - Order: rows come back in the order the function produced them; functions
//     get the records in the order of the batch.
//   - One call at a time: an Instance is not safe for concurrent Invoke calls
//     (they are serialized); different Instances run in parallel.
//   - Not retained: Invoke does not keep the batch or its slices after it
//     returns. The Result is the caller's.
//   - Failure: a failed batch yields an *InvokeError whose Kind says why. The
//     instance that failed is discarded; the next Invoke starts a fresh one, so
//     retrying the same batch is always safe. A failed batch yields no rows.
package fn

import (
	"encoding/json"
	"fmt"
	"time"
)

// Runtimes.
const (
	RuntimeWasm = "wasm"
	RuntimeExec = "exec"
)

// Modes, as reported by Function.Mode.
const (
	ModeOneShot = "oneshot" // a fresh wasm instance per batch; stdin until EOF
	ModeWarm    = "warm"    // a long-lived instance takes batch after batch
)

// Config describes one immutable function version.
type Config struct {
	Runtime  string // RuntimeWasm or RuntimeExec
	Code     []byte // the wasm module, or the executable/script (run directly; scripts need a shebang)
	CodeHash string // sha256 hex of Code (computed if empty; checked if set); names the compile cache and the exec code file
	// Memory in bytes; 0 means no limit of ours. wasm: the maximum linear memory,
	// rounded up to 64 KiB pages (enforced). exec: RLIMIT_DATA (private writable
	// memory) of the process, set right after it starts (best effort, Linux only;
	// see docs/functions.md).
	Memory int64
	// Timeout per batch, wall clock, including an exec process's start; 0 means
	// none. On expiry the guest is really stopped (wasm: it traps within a few
	// thousand loop iterations or calls, or at once if it sleeps; see
	// instrument.go; exec: the process group is killed).
	Timeout time.Duration
	Env     map[string]string // the function's environment (exec also gets PATH, HOME, TMPDIR, LANG)
}

// Envelope is what a function receives per record. JSON member names are
// given in parentheses; docs/functions.md has the exact encoding.
type Envelope struct {
	Stream    string            // "stream"
	Partition int32             // "partition"
	Offset    int64             // "offset"
	Key       []byte            // "key": a JSON string, null if nil; not valid UTF-8 → lossy "key" plus exact "key_base64"
	Timestamp time.Time         // "timestamp": RFC 3339 with nanoseconds, UTC
	Headers   map[string]string // "headers": an object, {} if none
	Data      json.RawMessage   // "data": the record's JSON value, always the last member; must be valid JSON (not checked)
}

// Result is the output of one batch.
type Result struct {
	Rows [][]byte // each one JSON object (checked), in order; 0..n per input record
	Log  []byte   // the tail (at most LogTail bytes) of what the function wrote to stderr (and, for wasm, stdout) during the batch
}

// Failure kinds of an InvokeError.
const (
	KindError    = "error"    // the function reported failure, or a one-shot module exited non-zero
	KindTrap     = "trap"     // wasm trap, Go panic or exit inside a warm wasm instance
	KindTimeout  = "timeout"  // Config.Timeout passed (or the caller's context ended)
	KindMemory   = "memory"   // the memory limit was hit
	KindCrash    = "crash"    // an exec process died or closed its stdout
	KindProtocol = "protocol" // bad framing, or output that is not JSON objects, or too much of it
)

// LogTail is how many bytes of a batch's log Result.Log and InvokeError.Log keep.
const LogTail = 64 << 10

// MaxOutput bounds the bytes of rows one batch may produce.
const MaxOutput = 64 << 20

// InvokeError is returned for every failed batch. The instance that failed has
// been discarded; the next Invoke starts a fresh one.
type InvokeError struct {
	Kind string // one of the Kind constants
	Log  []byte // the tail of the function's stderr during the batch
	Err  error
}

func (e *InvokeError) Error() string {
	return fmt.Sprintf("function %s: %v", e.Kind, e.Err)
}

func (e *InvokeError) Unwrap() error { return e.Err }
