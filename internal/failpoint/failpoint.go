// Package failpoint kills the process at a named point in the code, for the
// crash tests of the effectively-once protocol. It is inert unless the
// SLUICE_FAILPOINT environment variable names a point:
//
//	SLUICE_FAILPOINT=sink.after-upload:3
//
// kills the process with SIGKILL (no deferred code runs, like a machine or
// OOM kill) the 3rd time execution passes failpoint.Hit("sink.after-upload").
// A disabled failpoint costs one atomic load.
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
	after int64        // hits before the kill
	hits  atomic.Int64 // hits so far
)

func init() {
	spec := os.Getenv("SLUICE_FAILPOINT")
	if spec == "" {
		return
	}
	name, n, _ := strings.Cut(spec, ":")
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
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
