package fn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// variant is one runtime running the conformance function.
type variant struct {
	name   string
	mode   string
	config func(t testing.TB) Config
	kinds  map[string][]string // op → acceptable failure kinds
	prints bool                // fmt.Println goes to the log (Go SDK)
}

const conformTimeout = 10 * time.Second

func variants() []variant {
	wasm := func(pkg, target string) func(testing.TB) Config {
		return func(t testing.TB) Config {
			return Config{Runtime: RuntimeWasm, Code: buildCode(t, pkg, target), Memory: 64 << 20, Timeout: conformTimeout}
		}
	}
	return []variant{
		{name: "wasm-warm", mode: ModeWarm, config: wasm("./testdata/conform", targetWarm), prints: true,
			kinds: map[string][]string{"panic": {KindTrap}, "exit": {KindTrap}, "alloc": {KindMemory}}},
		{name: "wasm-oneshot-sdk", mode: ModeOneShot, config: wasm("./testdata/conform", targetCommand), prints: true,
			kinds: map[string][]string{"panic": {KindError}, "exit": {KindError}, "alloc": {KindMemory}}},
		{name: "wasm-oneshot-plain", mode: ModeOneShot, config: wasm("./testdata/oneshot", targetCommand),
			kinds: map[string][]string{"panic": {KindError}, "exit": {KindError}, "alloc": {KindMemory}}},
		{name: "exec-go", mode: ModeWarm, prints: true, config: func(t testing.TB) Config {
			return Config{Runtime: RuntimeExec, Code: buildCode(t, "./testdata/conform", targetNative), Memory: 256 << 20, Timeout: conformTimeout}
		}, kinds: map[string][]string{"panic": {KindCrash}, "exit": {KindCrash}, "alloc": {KindMemory}}},
		{name: "exec-python", mode: ModeWarm, config: func(t testing.TB) Config {
			code, err := os.ReadFile("testdata/conform.py")
			if err != nil {
				t.Fatal(err)
			}
			return Config{Runtime: RuntimeExec, Code: code, Memory: 512 << 20, Timeout: conformTimeout, Env: map[string]string{"X": "1"}}
		}, kinds: map[string][]string{"panic": {KindError}, "exit": {KindCrash}, "alloc": {KindMemory}}},
	}
}

// conformCase is one behaviour every runtime must show.
type conformCase struct {
	name string
	run  func(t *testing.T, v variant, h *Host, cfg Config)
}

var conformCases = []conformCase{
	{"rows in order", caseRowsInOrder},
	{"empty batch", caseEmpty},
	{"function error", caseFunctionError},
	{"stderr in log", caseLog},
	{"print goes to log", casePrint},
	{"timeout", caseTimeout},
	{"memory limit", caseMemory},
	{"panic", caseFailKind("panic")},
	{"exit mid-batch", caseFailKind("exit")},
	{"junk output", caseJunk},
	{"big batch", caseBig},
}

func TestConformance(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			h := newHost(t)
			cfg := v.config(t)
			if f := load(t, h, cfg); f.Mode() != v.mode {
				t.Fatalf("Mode() = %s, want %s", f.Mode(), v.mode)
			}
			for _, c := range conformCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, v, h, cfg) })
			}
		})
	}
}

// rowsData makes records asking for i%4 rows each (0..3).
func rowsData(first, n int) []string {
	d := make([]string, n)
	for i := range d {
		d[i] = fmt.Sprintf(`{"n":%d,"rows":%d}`, first+i, (first+i)%4)
	}
	return d
}

// checkRows verifies the rows of b: rows per record, order, every envelope field.
func checkRows(t *testing.T, b []Envelope, res *Result) {
	t.Helper()
	rows := decodeRows(t, res)
	k := 0
	for _, e := range b {
		var in struct{ Rows *int }
		_ = json.Unmarshal(e.Data, &in)
		want := 1
		if in.Rows != nil {
			want = *in.Rows
		}
		for i := 0; i < want; i++ {
			if k >= len(rows) {
				t.Fatalf("got %d rows, want more", len(rows))
			}
			checkRow(t, e, i, rows[k])
			k++
		}
	}
	if k != len(rows) {
		t.Fatalf("got %d rows, want %d", len(rows), k)
	}
}

func checkRow(t *testing.T, e Envelope, i int, r outRow) {
	t.Helper()
	if r.Offset != e.Offset || r.I != i || r.Stream != e.Stream || r.Partition != e.Partition {
		t.Fatalf("row %+v, want offset %d i %d", r, e.Offset, i)
	}
	if (r.Key == nil) != (e.Key == nil) || r.Key != nil && *r.Key != string(e.Key) {
		t.Fatalf("offset %d: key %v, want %q", e.Offset, r.Key, e.Key)
	}
	if ts, err := time.Parse(time.RFC3339Nano, r.TS); err != nil || !ts.Equal(e.Timestamp) {
		t.Fatalf("offset %d: ts %q, want %v", e.Offset, r.TS, e.Timestamp)
	}
	if h, ok := e.Headers["h"]; ok != (r.Hdr != nil) || ok && *r.Hdr != h {
		t.Fatalf("offset %d: hdr %v, want %q", e.Offset, r.Hdr, h)
	}
	var got, want any
	if json.Unmarshal(r.Data, &got) != nil || json.Unmarshal(e.Data, &want) != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("offset %d: data %s, want %s", e.Offset, r.Data, e.Data)
	}
}

func caseRowsInOrder(t *testing.T, v variant, h *Host, cfg Config) {
	inst := newInstance(t, load(t, h, cfg))
	for round := 0; round < 3; round++ {
		b := batch(int64(round*50), rowsData(round*50, 50)...)
		checkRows(t, b, invokeOK(t, inst, b))
	}
	b := batch(150, `{"rows":0}`, `{"rows":0}`)
	if res := invokeOK(t, inst, b); len(res.Rows) != 0 {
		t.Fatalf("got %d rows, want none", len(res.Rows))
	}
	b = batch(152, `"a string"`, `[1,2]`, `null`, "{\n  \"pretty\": true\n}")
	checkRows(t, b, invokeOK(t, inst, b))
}

func caseEmpty(t *testing.T, v variant, h *Host, cfg Config) {
	inst := newInstance(t, load(t, h, cfg))
	if res := invokeOK(t, inst, nil); len(res.Rows) != 0 {
		t.Fatalf("got %d rows", len(res.Rows))
	}
}

func caseFunctionError(t *testing.T, v variant, h *Host, cfg Config) {
	inst := newInstance(t, load(t, h, cfg))
	ierr := invokeErr(t, inst, batch(0, `{}`, `{"op":"fail"}`, `{}`))
	if ierr.Kind != KindError || !bytes.Contains(ierr.Log, []byte("failing at offset 1")) {
		t.Fatalf("got %s (%v), log %q; want error with the log", ierr.Kind, ierr.Err, ierr.Log)
	}
	if v.mode == ModeWarm && !strings.Contains(ierr.Error(), "failed at offset 1") {
		t.Fatalf("error %q does not carry the function's message", ierr.Error())
	}
	b := batch(0, rowsData(0, 5)...)
	checkRows(t, b, invokeOK(t, inst, b))
}

func caseLog(t *testing.T, v variant, h *Host, cfg Config) {
	inst := newInstance(t, load(t, h, cfg))
	res := invokeOK(t, inst, batch(7, `{"op":"log"}`, `{}`))
	if !bytes.Contains(res.Log, []byte("log at offset 7")) || len(res.Rows) != 2 {
		t.Fatalf("log %q, %d rows", res.Log, len(res.Rows))
	}
	res = invokeOK(t, inst, batch(9, `{}`))
	if bytes.Contains(res.Log, []byte("log at offset 7")) {
		t.Fatalf("the next batch's log repeats the previous one: %q", res.Log)
	}
}

func casePrint(t *testing.T, v variant, h *Host, cfg Config) {
	if !v.prints {
		t.Skip("fmt.Println redirection is a Go SDK feature")
	}
	inst := newInstance(t, load(t, h, cfg))
	b := batch(4, `{"op":"print"}`, `{}`)
	res := invokeOK(t, inst, b)
	checkRows(t, b, res)
	if !bytes.Contains(res.Log, []byte("printed at offset 4")) {
		t.Fatalf("log %q", res.Log)
	}
}

func caseTimeout(t *testing.T, v variant, h *Host, cfg Config) {
	cfg.Timeout = time.Second
	inst := newInstance(t, load(t, h, cfg))
	start := time.Now()
	ierr := invokeErr(t, inst, batch(0, `{}`, `{"op":"loop"}`))
	if elapsed := time.Since(start); ierr.Kind != KindTimeout || elapsed > cfg.Timeout+30*time.Second {
		t.Fatalf("got %s (%v) after %v, want a timeout (1s), not the loop running on", ierr.Kind, ierr.Err, elapsed)
	}
	b := batch(0, rowsData(0, 3)...)
	checkRows(t, b, invokeOK(t, inst, b))
}

func caseMemory(t *testing.T, v variant, h *Host, cfg Config) {
	inst := newInstance(t, load(t, h, cfg))
	ierr := invokeErr(t, inst, batch(0, `{"op":"alloc"}`))
	if !contains(v.kinds["alloc"], ierr.Kind) {
		t.Fatalf("got %s (%v), want %v; log %q", ierr.Kind, ierr.Err, v.kinds["alloc"], tailOf(ierr.Log))
	}
	b := batch(0, rowsData(0, 3)...)
	checkRows(t, b, invokeOK(t, inst, b))
}

func caseFailKind(op string) func(t *testing.T, v variant, h *Host, cfg Config) {
	return func(t *testing.T, v variant, h *Host, cfg Config) {
		inst := newInstance(t, load(t, h, cfg))
		ierr := invokeErr(t, inst, batch(0, `{}`, fmt.Sprintf(`{"op":%q}`, op), `{}`))
		if !contains(v.kinds[op], ierr.Kind) {
			t.Fatalf("got %s (%v), want %v; log %q", ierr.Kind, ierr.Err, v.kinds[op], tailOf(ierr.Log))
		}
		if op == "panic" && !strings.Contains(string(ierr.Log)+ierr.Error(), "boom at offset 1") {
			t.Fatalf("neither the log %q nor the error %q has the panic", tailOf(ierr.Log), ierr.Error())
		}
		b := batch(0, rowsData(0, 3)...)
		checkRows(t, b, invokeOK(t, inst, b))
	}
}

func caseJunk(t *testing.T, v variant, h *Host, cfg Config) {
	inst := newInstance(t, load(t, h, cfg))
	ierr := invokeErr(t, inst, batch(0, `{}`, `{"op":"junk"}`))
	if ierr.Kind != KindProtocol {
		t.Fatalf("got %s (%v), want protocol", ierr.Kind, ierr.Err)
	}
	b := batch(0, rowsData(0, 3)...)
	checkRows(t, b, invokeOK(t, inst, b))
}

// caseBig sends 10,000 records of 1 KiB (10 MB in, more out): no deadlock
// between writing the batch and reading the rows.
func caseBig(t *testing.T, v variant, h *Host, cfg Config) {
	cfg.Timeout = time.Minute
	cfg.Memory = 1 << 30
	inst := newInstance(t, load(t, h, cfg))
	pad := strings.Repeat("x", 1000)
	datas := make([]string, 10000)
	for i := range datas {
		datas[i] = fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)
	}
	b := batch(1000, datas...)
	res := invokeOK(t, inst, b)
	checkRows(t, b, res)
}

// TestExecCrashMidBatch kills an exec function's process while it works on a
// batch: "crash", then the same batch again gives the full output.
func TestExecCrashMidBatch(t *testing.T) {
	for _, v := range variants() {
		if !strings.HasPrefix(v.name, "exec") {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			inst := newInstance(t, load(t, newHost(t), v.config(t)))
			b := batch(0, `{"rows":2}`, `{"op":"sleep","ms":400}`, `{"rows":3}`)
			invokeOK(t, inst, batch(0, `{}`)) // started
			pid := inst.impl.(*execInstance).p.cmd.Process.Pid
			time.AfterFunc(150*time.Millisecond, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if ierr := invokeErr(t, inst, b); ierr.Kind != KindCrash {
				t.Fatalf("got %s (%v), want crash", ierr.Kind, ierr.Err)
			}
			res := invokeOK(t, inst, b)
			checkRows(t, b, res)
			if p := inst.impl.(*execInstance).p.cmd.Process.Pid; p == pid {
				t.Fatal("the process was not restarted")
			}
		})
	}
}

// TestExecEnvAndDir checks the environment and working directory of an exec function.
func TestExecEnvAndDir(t *testing.T) {
	script := "#!/bin/sh\nwhile read -r line; do\n" +
		"  printf '{\"x\":\"%s\",\"path\":\"%s\",\"pwd\":\"%s\",\"secret\":\"%s\"}\\n' \"$X\" \"${PATH:+set}\" \"$PWD\" \"$SLUICE_TEST_SECRET\"\n" +
		"  read -r env\n  echo '{\"__sluice\":\"ok\"}'\ndone\n"
	t.Setenv("SLUICE_TEST_SECRET", "leaked")
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeExec, Code: []byte(script), Env: map[string]string{"X": "hello"}, Timeout: 5 * time.Second}))
	res := invokeOK(t, inst, batch(0, `{}`))
	var row struct{ X, Path, Pwd, Secret string }
	if err := json.Unmarshal(res.Rows[0], &row); err != nil {
		t.Fatal(err)
	}
	if row.X != "hello" || row.Path != "set" || row.Secret != "" || !strings.HasSuffix(row.Pwd, "/work") {
		t.Fatalf("row %+v", row)
	}
	dir := inst.impl.(*execInstance).dir
	if err := inst.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("instance directory %s still there: %v", dir, err)
	}
}

// TestExecTimeoutKillsGroup checks that a timeout kills the function's children too.
func TestExecTimeoutKillsGroup(t *testing.T) {
	script := "#!/bin/sh\nsleep 300 &\necho $! > child.pid\nwait\n"
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeExec, Code: []byte(script), Timeout: 500 * time.Millisecond}))
	if ierr := invokeErr(t, inst, batch(0, `{}`)); ierr.Kind != KindTimeout {
		t.Fatalf("got %s (%v)", ierr.Kind, ierr.Err)
	}
	pid := childPID(t, inst)
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childPID reads the pid an exec test script wrote to child.pid in its
// working directory.
func childPID(t *testing.T, inst *Instance) int {
	t.Helper()
	pidText, err := os.ReadFile(inst.impl.(*execInstance).dir + "/work/child.pid")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(pidText), &pid)
	return pid
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tailOf(b []byte) []byte {
	if len(b) > 400 {
		return b[len(b)-400:]
	}
	return b
}

// TestExecRelativeCacheDir: a host whose cache directory is relative (the
// default ./sluice-data/cache/functions) runs exec code all the same,
// though the process's working directory is elsewhere.
func TestExecRelativeCacheDir(t *testing.T) {
	t.Chdir(t.TempDir())
	h, err := NewHost(context.Background(), filepath.Join("sluice-data", "cache", "functions"))
	if err != nil {
		t.Fatal(err)
	}
	h.AllowExec = true
	t.Cleanup(func() { h.Close(context.Background()) })
	script := "#!/bin/sh\nwhile read -r line; do\n  echo '{\"ok\":true}'\n  read -r env\n  echo '{\"__sluice\":\"ok\"}'\ndone\n"
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeExec, Code: []byte(script), Timeout: 10 * time.Second}))
	if res := invokeOK(t, inst, batch(0, `{}`)); len(res.Rows) != 1 {
		t.Fatalf("rows %s", res.Rows)
	}
}

// TestExecKillsEscapedChildren: a child that left the function's process
// group (setsid) is killed with it all the same, at a timeout and when the
// instance closes.
func TestExecKillsEscapedChildren(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	script := "#!/bin/sh\nsetsid sleep 300 </dev/null >/dev/null 2>&1 &\necho $! > child.pid\nwhile read -r line; do read -r env; sleep 30; done\n"
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeExec, Code: []byte(script), Timeout: 2 * time.Second}))
	if ierr := invokeErr(t, inst, batch(0, `{}`)); ierr.Kind != KindTimeout {
		t.Fatalf("got %s (%v)", ierr.Kind, ierr.Err)
	}
	pid := childPID(t, inst)
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") { // gone, or a zombie waiting for init
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the setsid child %d is still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExecProcessLimit: an exec function that starts more than
// MaxProcesses processes fails its batch with that limit named, and none of
// its processes is left.
func TestExecProcessLimit(t *testing.T) {
	script := fmt.Sprintf("#!/bin/sh\necho $$ > child.pid\ni=0\nwhile [ $i -lt %d ]; do sleep 300 & i=$((i+1)); done\nwhile read -r line; do read -r env; sleep 300; done\n", MaxProcesses+10)
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeExec, Code: []byte(script), Timeout: 2 * time.Minute}))
	ierr := invokeErr(t, inst, batch(0, `{}`))
	if !errors.Is(ierr.Err, errTooManyProcesses) {
		t.Fatalf("got %s (%v), want the process limit", ierr.Kind, ierr.Err)
	}
	tag := ""
	pid := childPID(t, inst)
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, processTagVar+"="); ok {
				tag = v
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for tag != "" && countTagged(tag) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the function's processes are still alive", countTagged(tag))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
