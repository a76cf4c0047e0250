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
// as a zombie. It waits until no goroutine of the process is inside a
// Critical section first, so that the stall never holds a lock that other
// processes wait for (a real stall could; the tests are about what a
// zombie writes when it wakes, not about locks). A disabled failpoint costs
// one atomic load.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

var (
	armed string       // the point's name
	stop  bool         // SIGSTOP instead of SIGKILL
	after int64        // hits before the kill
	hits  atomic.Int64 // hits so far

	critical sync.RWMutex // held for reading inside Critical sections; a stop takes it
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
			critical.Lock()
			syscall.Kill(os.Getpid(), syscall.SIGSTOP) // returns once SIGCONT came
			critical.Unlock()
			return
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// Critical marks a section that a stop failpoint must not freeze inside
// (one holding a lock shared with other processes): call it as
// defer failpoint.Critical()(). Without a stop failpoint it does nothing.
func Critical() (end func()) {
	if !stop {
		return func() {}
	}
	critical.RLock()
	return critical.RUnlock
}
