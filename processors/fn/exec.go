package fn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// execInstance runs a trusted executable as a long-lived subprocess speaking
// the framed protocol on stdin/stdout (docs/functions.md). The process starts
// at the first Invoke and after any failure; its stderr goes to a file in the
// instance's temporary directory, read back per batch.
type execInstance struct {
	fn  *Function
	dir string // temporary directory: work/ (the working directory) and stderr.log
	pmu sync.Mutex
	p   *process // nil until started, and after a failure; written under pmu
	enc encoder
}

// answerGrace is how long a successful response may wait for the host's
// write of the request to finish before it counts as a protocol error (the
// function answered without reading its whole input).
const answerGrace = time.Second

func (e *execInstance) invoke(ctx context.Context, batch []Envelope) (*Result, *InvokeError) {
	if e.p == nil {
		if err := e.start(); err != nil {
			return nil, &InvokeError{Kind: KindCrash, Err: err}
		}
	}
	p := e.p
	p.beginBatch()
	frame, err := e.enc.encodeFrame(batch)
	if err != nil {
		return nil, &InvokeError{Kind: KindProtocol, Err: err}
	}
	stop := context.AfterFunc(ctx, p.kill)
	defer stop()
	watchDone := make(chan struct{})
	defer close(watchDone)
	go p.watchProcesses(watchDone)
	written := make(chan error, 1)
	go func() {
		_, err := p.stdin.Write(frame)
		written <- err
	}()
	out, readErr := p.readResponse(make([]byte, 0, len(frame)))
	if readErr == nil {
		readErr = awaitWrite(written)
	}
	if readErr != nil || ctx.Err() != nil {
		return nil, e.fail(ctx, readErr)
	}
	rows, ierr := parseRows(out, true, len(batch))
	if ierr != nil {
		ierr.Log = e.discard()
		return nil, ierr
	}
	return &Result{Rows: rows, Log: p.readLog()}, nil
}

func awaitWrite(written chan error) error {
	select {
	case err := <-written:
		if err != nil {
			return fmt.Errorf("cannot write batch: %w", err)
		}
		return nil
	case <-time.After(answerGrace):
		return errAnsweredEarly
	}
}

var errAnsweredEarly = errors.New("function answered without reading the whole batch")

// fail kills the process, waits for it and classifies what happened.
func (e *execInstance) fail(ctx context.Context, readErr error) *InvokeError {
	state, tooMany := e.p.waitState(), e.p.tooMany.Load()
	log := e.discard()
	switch {
	case ctx.Err() != nil:
		return timeoutError(ctx, log)
	case tooMany:
		return &InvokeError{Kind: KindProtocol, Log: log, Err: errTooManyProcesses}
	case errors.Is(readErr, errOutputTooLarge), errors.Is(readErr, errAnsweredEarly):
		return &InvokeError{Kind: KindProtocol, Log: log, Err: readErr}
	case outOfMemory(log):
		return &InvokeError{Kind: KindMemory, Log: log, Err: fmt.Errorf("process died (%s): %w", state, readErr)}
	}
	return &InvokeError{Kind: KindCrash, Log: log, Err: fmt.Errorf("process died (%s): %w", state, readErr)}
}

// discard kills and reaps the process and returns the rest of its log.
func (e *execInstance) discard() []byte {
	if e.p == nil {
		return nil
	}
	e.p.kill()
	e.p.waitState()
	log := e.p.readLog()
	e.p.closeFiles()
	e.setProcess(nil)
	return log
}

// start launches the process in a new process group.
func (e *execInstance) start() error {
	if e.fn.host.isClosed() {
		return errClosed
	}
	if e.dir == "" {
		dir, err := os.MkdirTemp("", "sluice-fn-")
		if err != nil {
			return fmt.Errorf("cannot create function directory: %w", err)
		}
		e.dir = dir
	}
	work := filepath.Join(e.dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("cannot create function directory: %w", err)
	}
	p, err := startProcess(e.fn.execPath, work, filepath.Join(e.dir, "stderr.log"), e.env(work))
	if err != nil {
		return err
	}
	if e.fn.cfg.Memory > 0 {
		if err := setMemoryLimit(p.cmd.Process.Pid, e.fn.cfg.Memory); err != nil {
			p.kill()
			p.waitState()
			p.closeFiles()
			return err
		}
	}
	e.setProcess(p)
	return nil
}

func (e *execInstance) setProcess(p *process) {
	e.pmu.Lock()
	e.p = p
	e.pmu.Unlock()
}

// abort kills the running process, if any; the Invoke in progress fails. Safe
// to call concurrently with Invoke (Host.Close does).
func (e *execInstance) abort() {
	e.pmu.Lock()
	if e.p != nil {
		e.p.kill()
	}
	e.pmu.Unlock()
}

// env is a minimal environment: nothing of the host's leaks but PATH.
func (e *execInstance) env(work string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	base := map[string]string{"PATH": path, "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
	for k, v := range e.fn.cfg.Env {
		base[k] = v
	}
	env := make([]string, 0, len(base))
	for k, v := range base {
		env = append(env, k+"="+v)
	}
	return env
}

func (e *execInstance) close(context.Context) error {
	e.stop()
	e.fn.host.untrack(e)
	return nil
}

// stop ends the process gracefully (stdin closed, a moment to exit) then
// kills its group, and removes the directory.
func (e *execInstance) stop() {
	if e.p != nil {
		_ = e.p.stdin.Close()
		select {
		case <-e.p.done:
		case <-time.After(time.Second):
		}
		e.discard()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
		e.dir = ""
	}
}

// process is one running subprocess.
type process struct {
	cmd     *exec.Cmd
	tag     string // processTagVar's value for it and its descendants
	stdin   *os.File
	stdout  *os.File
	r       *bufio.Reader
	errLog  *os.File // the host's read handle on the stderr file
	errOff  int64    // where this batch's log starts
	done    chan struct{}
	waitErr error
	tooMany atomic.Bool // watchProcesses killed it: over MaxProcesses
}

func startProcess(path, dir, errPath string, env []string) (*process, error) {
	errW, err := os.OpenFile(errPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot create function log: %w", err)
	}
	defer errW.Close()
	errR, err := os.Open(errPath)
	if err != nil {
		return nil, fmt.Errorf("cannot open function log: %w", err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		errR.Close()
		return nil, fmt.Errorf("cannot create pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		errR.Close()
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("cannot create pipe: %w", err)
	}
	defer inR.Close()
	defer outW.Close()
	// The tag follows the process's descendants through their environment,
	// also those that leave its process group (setsid, daemons): kill finds
	// them by it.
	tag := newProcessTag()
	cmd := exec.Command(path)
	cmd.Dir, cmd.Env = dir, append(slices.Clip(env), processTagVar+"="+tag)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = sysProcAttr()
	if err := startRetry(cmd); err != nil {
		errR.Close()
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("cannot start function process: %w", err)
	}
	p := &process{cmd: cmd, tag: tag, stdin: inW, stdout: outR, r: bufio.NewReaderSize(outR, 64<<10), errLog: errR, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// startRetry starts cmd, retrying "text file busy": a fork elsewhere in this
// process can briefly hold a write descriptor of a just-written code file.
func startRetry(cmd *exec.Cmd) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = cmd.Start(); !errors.Is(err, syscall.ETXTBSY) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
		cmd.Process, cmd.ProcessState = nil, nil
	}
	return err
}

// readResponse appends lines to buf until a terminator line.
func (p *process) readResponse(buf []byte) ([]byte, error) {
	for {
		start := len(buf)
		for {
			chunk, err := p.r.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > MaxOutput {
				return buf, errOutputTooLarge
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return buf, fmt.Errorf("cannot read response: %w", err)
			}
			break
		}
		if bytes.HasPrefix(bytes.TrimSpace(buf[start:]), []byte(terminatorPrefix)) {
			return buf, nil
		}
	}
}

// beginBatch marks where this batch's log starts; a log file past 1 MiB is
// emptied first (the process is idle between batches, so nothing is lost).
func (p *process) beginBatch() {
	fi, err := p.errLog.Stat()
	if err != nil {
		return
	}
	if fi.Size() > 1<<20 && p.errLog.Truncate(0) == nil {
		p.errOff = 0
		return
	}
	p.errOff = fi.Size()
}

// readLog returns the tail of what was written to stderr since beginBatch.
func (p *process) readLog() []byte {
	fi, err := p.errLog.Stat()
	if err != nil || fi.Size() <= p.errOff {
		return nil
	}
	from := max(p.errOff, fi.Size()-LogTail)
	b := make([]byte, fi.Size()-from)
	n, _ := p.errLog.ReadAt(b, from)
	p.errOff = from + int64(n)
	return b[:n]
}

// MaxProcesses is how many processes one exec instance may have at once
// (itself and every descendant, found by its tag). It is checked
// CheckProcessesEvery while a batch runs; past it the instance is killed
// and the batch fails.
const MaxProcesses = 64

// CheckProcessesEvery is how often a running batch counts its processes.
const CheckProcessesEvery = 250 * time.Millisecond

var errTooManyProcesses = fmt.Errorf("the function started more than %d processes (the limit of an exec instance, with its descendants): it was killed", MaxProcesses)

// watchProcesses counts p's processes until done, and kills them all once
// they are more than MaxProcesses.
func (p *process) watchProcesses(done chan struct{}) {
	tick := time.NewTicker(CheckProcessesEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if countTagged(p.tag) > MaxProcesses {
			p.tooMany.Store(true)
			p.kill()
			return
		}
	}
}

func (p *process) kill() {
	killGroup(p.cmd.Process.Pid)
	killTagged(p.tag)
}

// processTagVar is the environment variable that tags a function process
// and everything it starts.
const processTagVar = "SLUICE_FUNCTION_PROCESS"

func newProcessTag() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// waitState waits (killing the group if it takes over 2 s) for the process to
// exit and describes how it ended.
func (p *process) waitState() string {
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		p.kill()
		<-p.done
	}
	killGroup(p.cmd.Process.Pid) // children left behind
	if p.cmd.ProcessState == nil {
		return "unknown"
	}
	return p.cmd.ProcessState.String()
}

func (p *process) closeFiles() {
	p.stdin.Close()
	p.stdout.Close()
	p.errLog.Close()
}
