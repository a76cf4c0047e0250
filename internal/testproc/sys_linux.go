package testproc

import (
	"os"
	"syscall"
)

// SysProcAttr puts the server in its own process group, and kills it when
// the test binary dies (a panic, a timeout, a SIGKILL), so no server outlives
// its test.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillGroup sends SIGKILL to p's process group (p leads it), so that
// anything the server started dies with it.
func KillGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		return p.Kill()
	}
	return nil
}
