// Package testproc runs the server processes that tests start, kill and
// restart (versitygw, the Apache Kafka JVM): output appended to a log file,
// a process group of their own that dies with the test binary (Linux), a
// start that waits until the server answers, and a SIGKILL stop. It imports
// nothing of sluice, so the packages whose tests use it can.
package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Proc is one server process; Start it again after Kill to restart it.
type Proc struct {
	Name string   // for messages ("versitygw", "the Kafka broker")
	Path string   // the executable
	Args []string // its arguments
	Dir  string   // working directory ("" for the test's)
	Logs string   // file the output is appended to

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// CommandLine is the command Start runs, for messages.
func (p *Proc) CommandLine() string { return p.Path + " " + strings.Join(p.Args, " ") }

// Start runs the process and calls ready until it returns nil. It fails if
// the process exits first or wait passes (then the process is killed).
func (p *Proc) Start(wait time.Duration, ready func(ctx context.Context) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(p.Logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "== %s %s\n", time.Now().Format(time.RFC3339Nano), p.CommandLine())
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = SysProcAttr()
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("%s exited at start: %v", p.Name, cmd.ProcessState)
		case <-ctx.Done():
			p.killLocked(5 * time.Second)
			return fmt.Errorf("%s did not answer within %s: %v", p.Name, wait, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to the process group (as a crash would) and waits up
// to wait for the process to exit. Killing a stopped process does nothing.
func (p *Proc) Kill(wait time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killLocked(wait)
}

func (p *Proc) killLocked(wait time.Duration) error {
	if p.cmd == nil {
		return nil
	}
	pid := p.cmd.Process.Pid
	KillGroup(p.cmd.Process)
	p.cmd = nil
	select {
	case <-p.exited:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%s (pid %d) did not exit within %s of SIGKILL", p.Name, pid, wait)
	}
}

// Tail is the end of a file, at most n bytes, from a line start.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// FreePorts returns n distinct loopback ports that were free a moment ago.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held open until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// KeepLog saves a failed test's server output where it outlives the test's
// temporary directories ($SLUICE_TEST_LOGS, else sluice-test-logs in the
// system temporary directory, one directory per test) and returns a short
// notice: the file and the output's last few lines. Failure dumps stay short
// so that the failure itself, printed before the cleanups run, is still in
// sight at the end of a long CI log.
func KeepLog(test, what string, data []byte) string {
	dir := os.Getenv("SLUICE_TEST_LOGS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "sluice-test-logs")
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '/' || r == ' ' || r == ':' || r == '\\' {
				return '_'
			}
			return r
		}, s)
	}
	dir = filepath.Join(dir, clean(test))
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	tail := lines[max(0, len(lines)-3):]
	for i := len(lines) - len(tail) - 1; i >= 0; i-- { // and the last error before them
		if strings.Contains(lines[i], "level=ERROR") || strings.Contains(lines[i], `"level":"ERROR"`) {
			tail = append([]string{lines[i], "..."}, tail...)
			break
		}
	}
	last := strings.Join(tail, "\n")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Sprintf("%s output (not kept: %v), last lines:\n%s", what, err, last)
	}
	f, err := os.CreateTemp(dir, clean(what)+"-*.log")
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Sprintf("%s output (not kept: %v), last lines:\n%s", what, err, last)
	}
	return fmt.Sprintf("%s output kept in %s, last lines:\n%s", what, f.Name(), last)
}

// KeepLogFile is KeepLog for output that is in a file.
func KeepLogFile(test, what, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("%s output: cannot read %s: %v", what, path, err)
	}
	return KeepLog(test, what, data)
}
