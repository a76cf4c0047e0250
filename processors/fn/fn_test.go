package fn

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sdk/go/sluicefn"
)

func TestEnvelopeEncoding(t *testing.T) {
	e := Envelope{Stream: "s\"1", Partition: 2, Offset: 42, Key: []byte{0xff, 'k'},
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("", 3600)),
		Headers:   map[string]string{"b": "2", "a": "1\n"}, Data: json.RawMessage("{\n \"x\": [1,\n2]\n}")}
	line, err := appendEnvelope(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"stream":"s\"1","partition":2,"offset":42,"key":"\ufffdk","key_base64":"/2s=","timestamp":"2026-01-02T02:04:05.000006000Z","headers":{"a":"1\n","b":"2"},"data":{"x":[1,2]}}` + "\n"
	if string(line) != want {
		t.Fatalf("got  %s\nwant %s", line, want)
	}
	var r sluicefn.Record
	if err := sluicefn.DecodeEnvelope(line[:len(line)-1], &r); err != nil {
		t.Fatal(err)
	}
	if r.Stream != e.Stream || r.Offset != 42 || r.Partition != 2 || string(r.Key) != string(e.Key) ||
		!r.Timestamp().Equal(e.Timestamp) || r.Headers()["a"] != "1\n" || string(r.Data) != `{"x":[1,2]}` {
		t.Fatalf("decoded %+v", r)
	}
	e = Envelope{Data: nil}
	line, _ = appendEnvelope(nil, &e)
	if !strings.Contains(string(line), `"key":null,`) || !strings.HasSuffix(string(line), `"headers":{},"data":null}`+"\n") {
		t.Fatalf("got %s", line)
	}
	if _, err := appendEnvelope(nil, &Envelope{Data: json.RawMessage("{\n")}); err == nil {
		t.Fatal("invalid multi-line data encoded")
	}
}

func TestParseRows(t *testing.T) {
	ok := `{"__sluice":"ok"}`
	for _, c := range []struct {
		out    string
		framed bool
		rows   int
		kind   string
	}{
		{`{"a":1}` + "\n\n" + `{"b":2}` + "\r\n" + ok + "\n", true, 2, ""},
		{ok, true, 0, ""},
		{`{"a":1}`, true, 0, KindProtocol}, // no terminator
		{`{"a":1}` + "\n" + ok + "\n" + `{"b":1}`, true, 0, KindProtocol}, // after terminator
		{"junk\n" + ok, true, 0, KindProtocol},
		{`{"a":1}` + "\n" + `{"__sluice":"error","message":"bad"}`, true, 0, KindError},
		{`{"__sluice":"what"}`, true, 0, KindProtocol},
		{`{"a":` + "\n" + ok, true, 0, KindProtocol},
		{`[1]` + "\n" + ok, true, 0, KindProtocol},
		{`{"a":1}` + "\n" + `{"b":2}`, false, 2, ""},
		{`{"__sluice":"ok"}`, false, 1, ""}, // one-shot output has no terminator
	} {
		rows, ierr := parseRows([]byte(c.out), c.framed, 0)
		kind := ""
		if ierr != nil {
			kind = ierr.Kind
		}
		if kind != c.kind || len(rows) != c.rows {
			t.Errorf("%q: got %d rows, kind %q (%v); want %d, %q", c.out, len(rows), kind, ierr, c.rows, c.kind)
		}
	}
}

func TestLoad(t *testing.T) {
	ctx := context.Background()
	code := buildCode(t, "./testdata/conform", targetWarm)
	dir := t.TempDir()
	h, err := NewHost(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f1 := load(t, h, Config{Runtime: RuntimeWasm, Code: code})
	cold := time.Since(start)
	start = time.Now()
	f2 := load(t, h, Config{Runtime: RuntimeWasm, Code: code, CodeHash: f1.Config().CodeHash})
	if f1.wasm != f2.wasm || time.Since(start) > 50*time.Millisecond {
		t.Fatal("a second Load compiled again")
	}
	if f1.Config().Code != nil || len(f1.Config().CodeHash) != 64 {
		t.Fatalf("config %+v", f1.Config())
	}
	_ = h.Close(ctx)
	// A restarted host finds the compiled code on disk.
	h2, err := NewHost(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close(ctx)
	start = time.Now()
	load(t, h2, Config{Runtime: RuntimeWasm, Code: code})
	warm := time.Since(start)
	t.Logf("cold compile %v, from the disk cache %v", cold, warm)
	if warm > cold/2 {
		t.Errorf("loading from the disk cache took %v, compiling %v", warm, cold)
	}
	if _, err := h2.Load(ctx, Config{Runtime: RuntimeWasm, Code: code, CodeHash: strings.Repeat("0", 64)}); err == nil {
		t.Error("a wrong CodeHash was accepted")
	}
	if _, err := h2.Load(ctx, Config{Runtime: "jvm", Code: code}); err == nil {
		t.Error("an unknown runtime was accepted")
	}
	empty := []byte("\x00asm\x01\x00\x00\x00")
	if _, err := h2.Load(ctx, Config{Runtime: RuntimeWasm, Code: empty}); err == nil || !strings.Contains(err.Error(), "exports neither") {
		t.Errorf("a module without entry points: %v", err)
	}
	if _, err := h2.Load(ctx, Config{Runtime: RuntimeWasm, Code: []byte("not wasm")}); err == nil {
		t.Error("garbage compiled")
	}
}

func TestExecCodeFile(t *testing.T) {
	h := newHost(t)
	script := []byte("#!/bin/sh\nexit 0\n")
	h.AllowExec = false
	if _, err := h.Load(context.Background(), Config{Runtime: RuntimeExec, Code: script}); !errors.Is(err, ErrExecDisabled) {
		t.Fatalf("exec code loaded without AllowExec: %v", err)
	}
	h.AllowExec = true
	f := load(t, h, Config{Runtime: RuntimeExec, Code: script})
	if f.Mode() != ModeWarm || filepath.Base(f.execPath) != f.Config().CodeHash {
		t.Fatalf("mode %s, path %s", f.Mode(), f.execPath)
	}
	if fi, err := os.Stat(f.execPath); err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("code file %v %v", fi, err)
	}
	// The script exits at once: every batch is a crash, and a fresh process is tried each time.
	inst := newInstance(t, f)
	for i := 0; i < 2; i++ {
		if ierr := invokeErr(t, inst, batch(0, `{}`)); ierr.Kind != KindCrash {
			t.Fatalf("got %s (%v)", ierr.Kind, ierr.Err)
		}
	}
}

// TestTimeoutReleasesCPU: after a timeout the spinning guest really stops.
func TestTimeoutReleasesCPU(t *testing.T) {
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeWasm, Code: buildCode(t, "./testdata/conform", targetWarm), Timeout: 300 * time.Millisecond}))
	invokeOK(t, inst, batch(0, `{}`))
	goroutines := runtime.NumGoroutine()
	start := time.Now()
	if ierr := invokeErr(t, inst, batch(0, `{"op":"loop"}`)); ierr.Kind != KindTimeout || !errors.Is(ierr, context.DeadlineExceeded) {
		t.Fatalf("got %s (%v)", ierr.Kind, ierr.Err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("Invoke returned after %v", elapsed)
	}
	before := cpuTime()
	time.Sleep(500 * time.Millisecond)
	if used := cpuTime() - before; used > 200*time.Millisecond {
		t.Fatalf("%v of CPU used in the 500 ms after the timeout: the guest still runs", used)
	}
	if n := runtime.NumGoroutine(); n > goroutines+1 {
		t.Fatalf("%d goroutines, %d before", n, goroutines)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestInstancesInParallel runs several warm instances of one function at once.
func TestInstancesInParallel(t *testing.T) {
	h := newHost(t)
	f := load(t, h, Config{Runtime: RuntimeWasm, Code: buildCode(t, "./testdata/conform", targetWarm), Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		inst := newInstance(t, f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 5; round++ {
				b := batch(int64(round*20), rowsData(round*20, 20)...)
				res, err := inst.Invoke(context.Background(), b)
				if err != nil {
					t.Error(err)
					return
				}
				if len(decodeRowsNoFatal(res)) != len(res.Rows) {
					t.Error("bad rows")
				}
			}
		}()
	}
	wg.Wait()
}

func decodeRowsNoFatal(res *Result) []outRow {
	var rows []outRow
	for _, r := range res.Rows {
		var o outRow
		if json.Unmarshal(r, &o) == nil {
			rows = append(rows, o)
		}
	}
	return rows
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeExec, Code: []byte("#!/bin/sh\ncat >/dev/null\n")}))
	if err := inst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Invoke(ctx, batch(0, `{}`)); !errors.Is(err, errInstanceClosed) {
		t.Fatalf("Invoke after Close: %v", err)
	}
	_ = h.Close(ctx)
	if _, err := h.Load(ctx, Config{Runtime: RuntimeExec, Code: []byte("x")}); err == nil {
		t.Fatal("Load after Close worked")
	}
}

// TestFunctionMemoryLimit: instances reserve their memory limit from the
// host's MemoryLimit when made and give it back when closed; one that does
// not fit fails with ErrNoFunctionMemory, saying why.
func TestFunctionMemoryLimit(t *testing.T) {
	h := newHost(t)
	h.MemoryLimit = 3 * 64 << 20
	f := load(t, h, Config{Runtime: RuntimeWasm, Code: buildCode(t, "./testdata/conform", targetWarm), Memory: 64 << 20})
	if f.Reservation() != 64<<20 {
		t.Fatalf("reservation %d", f.Reservation())
	}
	var insts []*Instance
	for range 3 {
		inst, err := f.NewInstance(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
	}
	if _, err := f.NewInstance(context.Background()); !errors.Is(err, ErrNoFunctionMemory) || !strings.Contains(err.Error(), "reserved by the other instances") {
		t.Fatalf("a 4th instance: %v", err)
	}
	insts[0].Close(context.Background())
	insts[0].Close(context.Background()) // twice gives back once
	inst, err := f.NewInstance(context.Background())
	if err != nil {
		t.Fatalf("after a Close: %v", err)
	}
	invokeOK(t, inst, batch(0, `{}`))
	for _, i := range append(insts[1:], inst) {
		i.Close(context.Background())
	}
	if h.Reserved() != 0 {
		t.Fatalf("%d bytes still reserved", h.Reserved())
	}
	big := load(t, h, Config{Runtime: RuntimeWasm, Code: buildCode(t, "./testdata/conform", targetWarm), Memory: 256 << 20})
	if _, err := big.NewInstance(context.Background()); !errors.Is(err, ErrNoFunctionMemory) || !strings.Contains(err.Error(), "over --function-memory") {
		t.Fatalf("an instance over the whole limit: %v", err)
	}
}
