package kafkatest

import (
	"os"
	"syscall"
)

// sysProcAttr puts the JVM in its own process group, and kills it when the
// test binary dies (a panic, a timeout, a SIGKILL), so no broker outlives
// its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to p's process group (p leads it: see
// sysProcAttr), so that anything the JVM started dies with it.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		return p.Kill()
	}
	return nil
}
