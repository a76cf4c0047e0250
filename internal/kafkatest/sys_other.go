//go:build !linux

package kafkatest

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills p alone off Linux.
func killGroup(p *os.Process) error { return p.Kill() }
