//go:build !linux

package testproc

import (
	"os"
	"syscall"
)

func SysProcAttr() *syscall.SysProcAttr { return nil }

// KillGroup kills p alone off Linux.
func KillGroup(p *os.Process) error { return p.Kill() }
