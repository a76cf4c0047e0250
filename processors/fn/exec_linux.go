package fn

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

func sysProcAttr() *syscall.SysProcAttr {
	// Own process group, so a timeout kills the function's children too;
	// SIGKILL if the host dies.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// setMemoryLimit sets RLIMIT_DATA of a running process (prlimit(2)): since
// Linux 4.7 it bounds the private writable memory (heap, anonymous mappings),
// which is what a function allocates. RLIMIT_AS would also count address space
// that is only reserved (a Go 1.26 binary reserves about 1.2 GB at start, V8
// more) and kill such programs at any useful limit. It is set right after the
// process starts, so start-up allocations race it.
func setMemoryLimit(pid int, bytes int64) error {
	lim := syscall.Rlimit{Cur: uint64(bytes), Max: uint64(bytes)}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_DATA,
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("cannot set memory limit: %w", errno)
	}
	return nil
}

// killTagged kills every process of this user whose environment holds
// processTagVar=tag: a function's descendants, also those that left its
// process group (setsid) or were re-parented. A process that cleared its
// environment escapes; run functions that may do that in a container.
func killTagged(tag string) {
	// Passes until none is left: a process forking meanwhile may have
	// started a child after the previous pass read the list.
	for range 10 {
		if eachTagged(tag, func(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }) == 0 {
			return
		}
	}
}

// countTagged is how many live processes carry tag.
func countTagged(tag string) int { return eachTagged(tag, func(int) {}) }

// eachTagged calls fn with the pid of every live process (not a zombie) of
// this user whose environment holds processTagVar=tag, and returns how
// many there were.
func eachTagged(tag string, fn func(pid int)) int {
	want := []byte(processTagVar + "=" + tag)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self, n := os.Getpid(), 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || len(env) == 0 {
			continue // gone, another user's, or a zombie (no environment left)
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				fn(pid)
				n++
				break
			}
		}
	}
	return n
}
