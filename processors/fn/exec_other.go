//go:build !linux

package fn

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// setMemoryLimit is not implemented outside Linux: Memory is not enforced.
func setMemoryLimit(int, int64) error { return nil }

// killTagged is not implemented outside Linux: descendants that left the
// process group survive.
func killTagged(string) {}

// countTagged is not implemented outside Linux: MaxProcesses is not enforced.
func countTagged(string) int { return 0 }
