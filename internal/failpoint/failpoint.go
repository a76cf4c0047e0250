// Package failpoint kills the process at a named point in the code, for the
// crash tests of the effectively-once protocol. It is inert unless the
// SLUICE_FAILPOINT environment variable names a point:
//
//	SLUICE_FAILPOINT=sink.after-upload:3
//
// kills the process with SIGKILL (no deferred code runs, like a machine or
// OOM kill) the 3rd time execution passes failpoint.Hit("sink.after-upload").
// With a third field "stop" (sink.after-pending:1:stop) the process stops
// itself with SIGSTOP instead, and goes on where it was when it gets
// SIGCONT: a worker that stalls (a long GC pause, a frozen VM) and wakes up
// as a zombie. A disabled failpoint costs one atomic load.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

var (
	armed string       // the point's name
	stop  bool         // SIGSTOP instead of SIGKILL
	after int64        // hits before the kill
	hits  atomic.Int64 // hits so far
)

func init() {
	spec := os.Getenv("SLUICE_FAILPOINT")
	if spec == "" {
		return
	}
	name, n, _ := strings.Cut(spec, ":")
	n, mode, _ := strings.Cut(n, ":")
	stop = mode == "stop"
	after = 1
	if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
		after = v
	}
	armed = name
}

// Hit marks that execution passed the point name.
func Hit(name string) {
	if armed == "" || armed != name {
		return
	}
	if hits.Add(1) == after {
		if stop {
			syscall.Kill(os.Getpid(), syscall.SIGSTOP) // returns once SIGCONT came
			return
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
