package fn

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The tests build their wasm modules and binaries with the Go toolchain, once
// per test process, into a temporary directory. Hosts share one compilation
// cache directory, so each module is compiled by wazero once per process.

var (
	testDir    string
	sharedDir  string // the hosts' cache directory
	buildMu    sync.Mutex
	buildCache = map[string]*built{}
)

type built struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-fn-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDir, sharedDir = dir, filepath.Join(dir, "cache")
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Build targets.
const (
	targetWarm    = "warm"    // GOOS=wasip1 -buildmode=c-shared
	targetCommand = "command" // GOOS=wasip1
	targetNative  = "native"  // this machine
)

// buildCode builds the Go main package pkg (relative to this directory) for
// target and returns the file's contents.
func buildCode(t testing.TB, pkg, target string) []byte {
	t.Helper()
	return buildOnce(t, pkg+"@"+target, func() (string, error) { return goBuild(pkg, target) })
}

// buildOnce runs build once per test process for key and returns the
// contents of the file it made.
func buildOnce(t testing.TB, key string, build func() (path string, err error)) []byte {
	t.Helper()
	buildMu.Lock()
	b, ok := buildCache[key]
	if !ok {
		b = &built{}
		buildCache[key] = b
	}
	buildMu.Unlock()
	b.once.Do(func() { b.path, b.err = build() })
	if b.err != nil {
		t.Fatal(b.err)
	}
	code, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func goBuild(pkg, target string) (string, error) {
	out := filepath.Join(testDir, "bin", filepath.Base(pkg)+"-"+target)
	args := []string{"build", "-o", out}
	env := append(os.Environ(), "CGO_ENABLED=0")
	switch target {
	case targetWarm:
		args = append(args, "-buildmode=c-shared")
		env = append(env, "GOOS=wasip1", "GOARCH=wasm")
	case targetCommand:
		env = append(env, "GOOS=wasip1", "GOARCH=wasm")
	}
	cmd := exec.Command(goTool(), append(args, pkg)...)
	cmd.Env = env
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build %s for %s: %v\n%s", pkg, target, err, msg)
	}
	return out, nil
}

func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

func newHost(t testing.TB) *Host {
	t.Helper()
	h, err := NewHost(context.Background(), sharedDir)
	if err != nil {
		t.Fatal(err)
	}
	h.AllowExec = true
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func load(t testing.TB, h *Host, cfg Config) *Function {
	t.Helper()
	f, err := h.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newInstance(t testing.TB, f *Function) *Instance {
	t.Helper()
	inst, err := f.NewInstance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Close(context.Background()) })
	return inst
}

var baseTime = time.Date(2026, 11, 22, 9, 30, 0, 123456789, time.UTC)

// batch makes envelopes with offsets from first, one per data value.
func batch(first int64, datas ...string) []Envelope {
	b := make([]Envelope, len(datas))
	for i, d := range datas {
		off := first + int64(i)
		b[i] = Envelope{
			Stream: "events", Partition: 3, Offset: off,
			Timestamp: baseTime.Add(time.Duration(off) * time.Millisecond),
			Data:      json.RawMessage(d),
		}
		if off%2 == 0 {
			b[i].Key = []byte(fmt.Sprintf("key-%d", off))
			b[i].Headers = map[string]string{"h": fmt.Sprintf("v%d", off)}
		}
	}
	return b
}

// outRow is a row of the conformance function.
type outRow struct {
	Stream    string          `json:"stream"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       *string         `json:"key"`
	TS        string          `json:"ts"`
	Hdr       *string         `json:"hdr"`
	I         int             `json:"i"`
	Data      json.RawMessage `json:"data"`
}

func decodeRows(t testing.TB, res *Result) []outRow {
	t.Helper()
	rows := make([]outRow, len(res.Rows))
	for i, r := range res.Rows {
		if err := json.Unmarshal(r, &rows[i]); err != nil {
			t.Fatalf("row %d %q: %v", i, r, err)
		}
	}
	return rows
}

// invokeErr runs a batch that must fail and returns the error.
func invokeErr(t testing.TB, inst *Instance, b []Envelope) *InvokeError {
	t.Helper()
	res, err := inst.Invoke(context.Background(), b)
	if err == nil {
		t.Fatalf("Invoke succeeded with %d rows, want an error", len(res.Rows))
	}
	ierr, ok := err.(*InvokeError)
	if !ok {
		t.Fatalf("error %T %v is not an *InvokeError", err, err)
	}
	return ierr
}

func invokeOK(t testing.TB, inst *Instance, b []Envelope) *Result {
	t.Helper()
	res, err := inst.Invoke(context.Background(), b)
	if err != nil {
		var log []byte
		if ierr, ok := err.(*InvokeError); ok {
			log = ierr.Log
		}
		t.Fatalf("Invoke: %v\nlog:\n%s", err, log)
	}
	return res
}
