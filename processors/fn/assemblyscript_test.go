package fn

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The AssemblyScript tests build real AssemblyScript modules with the
// compiler from npm (examples/assemblyscript's package-lock.json), the way a
// user outside Go would: the warm ABI written against docs/functions.md, with
// no SDK of ours.
//
// Where the compiler comes from, in order:
//
//  1. SLUICE_ASC, if set: the path of asc.
//  2. ${SLUICE_CACHE:-$HOME/.cache/sluice}/assemblyscript-VERSION/node_modules/.bin/asc,
//     where `scripts/assemblyscript install` puts it (scripts/test runs it).
//  3. Neither: the tests fail, saying to run `scripts/assemblyscript install`;
//     with SLUICE_SKIP_ASC=1 they are skipped instead.
//
// asc is a Node.js program: node must be on PATH.

// ascVersion is the AssemblyScript release the tests expect in the cache;
// scripts/assemblyscript and examples/assemblyscript/package.json name the same one.
const ascVersion = "0.28.20"

const (
	envASC     = "SLUICE_ASC"      // the path of asc
	envSkipASC = "SLUICE_SKIP_ASC" // "1": skip instead of failing when asc is missing
)

// ascPath returns the AssemblyScript compiler, or fails (skips) the test.
func ascPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(envASC); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", envASC, p, err)
		}
		return p
	}
	cache := os.Getenv("SLUICE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "sluice")
	}
	p := filepath.Join(cache, "assemblyscript-"+ascVersion, "node_modules", ".bin", "asc")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv(envSkipASC) == "1" {
		t.Skipf("no AssemblyScript compiler at %s (%s=1)", p, envSkipASC)
	}
	t.Fatalf("no AssemblyScript compiler at %s: run scripts/assemblyscript install (needs Node.js and npm), "+
		"or set %s to asc, or %s=1 to skip the AssemblyScript tests", p, envASC, envSkipASC)
	return ""
}

// buildASC builds the AssemblyScript project in dir (relative to this
// directory) with its asconfig.json's release target, once per test process,
// and returns the module.
func buildASC(t testing.TB, dir string) []byte {
	t.Helper()
	asc := ascPath(t)
	return buildOnce(t, "asc:"+dir, func() (string, error) {
		out := filepath.Join(testDir, "asc", filepath.Base(dir)+".wasm")
		cmd := exec.Command(asc, "--config", "asconfig.json", "--target", "release", "--outFile", out)
		cmd.Dir = dir
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("cannot build %s with %s: %v\n%s", dir, asc, err, msg)
		}
		return out, nil
	})
}

const (
	ascExample = "../../examples/assemblyscript"
	ascFault   = "testdata/asfault" // the example plus fail/loop/abort hooks
)

// levelRow is the example's row for e, given the raw JSON of level and msg.
func levelRow(e Envelope, level, msg string) string {
	return fmt.Sprintf(`{"ts":"%s","partition":%d,"offset":%d,"level":%s,"msg":%s}`,
		e.Timestamp.UTC().Format(tsLayout), e.Partition, e.Offset, level, msg)
}

func checkASRows(t *testing.T, res *Result, want []string) {
	t.Helper()
	for i := 0; i < len(res.Rows) || i < len(want); i++ {
		var got, w string
		if i < len(res.Rows) {
			got = string(res.Rows[i])
		}
		if i < len(want) {
			w = want[i]
		}
		if got != w {
			t.Fatalf("row %d of %d (want %d):\n got %s\nwant %s", i, len(res.Rows), len(want), got, w)
		}
	}
}

// warmOf returns the guest state of a warm wasm instance.
func warmOf(inst *Instance) *warmInstance { return inst.impl.(*warmInstance) }

func TestAssemblyScriptWarm(t *testing.T) {
	h := newHost(t)
	f := load(t, h, Config{Runtime: RuntimeWasm, Code: buildASC(t, ascExample), Memory: 64 << 20, Timeout: 10 * time.Second})
	if f.Mode() != ModeWarm {
		t.Fatalf("Mode() = %s, want %s", f.Mode(), ModeWarm)
	}
	// WASI's fd_write at most: no env.abort, no imported memory.
	for _, def := range f.wasm.compiled.ImportedFunctions() {
		if mod, name, _ := def.Import(); mod != "wasi_snapshot_preview1" {
			t.Errorf("the module imports %s.%s", mod, name)
		}
	}
	if n := len(f.wasm.compiled.ImportedMemories()); n != 0 {
		t.Errorf("the module imports %d memories", n)
	}
	inst := newInstance(t, f)

	t.Run("rows", func(t *testing.T) {
		b := batch(10,
			`{"level":"info","msg":"hi"}`,
			`{"level":"debug","msg":"noise"}`,
			`{"msg":"no level"}`,
			`{ "level" : "WARN" , "msg" : "spaced", "n":[1,{"level":"debug"}] }`,
			`{"level":"DeBuG"}`,
			`"a plain line with \"quotes\""`,
			`{"nested":{"level":"debug","msg":"inner"},"level":"error","msg":"caf\u00e9 ü \\ \"q\""}`,
			`42`,
			`{"level":null,"msg":{"k":[1,"}"]}}`,
			`{"level":"info","message":"from message","msg2":"x"}`,
			`{"level":7,"msg":3,"message":"not this one"}`,
		)
		want := []string{
			levelRow(b[0], `"info"`, `"hi"`),
			levelRow(b[2], `null`, `"no level"`),
			levelRow(b[3], `"WARN"`, `"spaced"`),
			levelRow(b[5], `null`, `"a plain line with \"quotes\""`),
			levelRow(b[6], `"error"`, `"caf\u00e9 ü \\ \"q\""`),
			levelRow(b[7], `null`, `null`),
			levelRow(b[8], `null`, `null`),
			levelRow(b[9], `"info"`, `"from message"`),
			levelRow(b[10], `null`, `null`),
		}
		checkASRows(t, invokeOK(t, inst, b), want)
	})

	t.Run("instance reused", func(t *testing.T) {
		mod := warmOf(inst).mod
		if mod == nil {
			t.Fatal("no guest after a batch")
		}
		for round := 0; round < 5; round++ {
			// Batches of growing size: the response buffer grows past its first 4 KiB.
			var datas []string
			var want []string
			first := int64(1000 * (round + 1))
			n := 50 << round
			for i := 0; i < n; i++ {
				if i%3 == 1 {
					datas = append(datas, fmt.Sprintf(`{"level":"debug","msg":"d%d"}`, i))
				} else {
					datas = append(datas, fmt.Sprintf(`{"level":"info","msg":"m%d"}`, i))
				}
			}
			b := batch(first, datas...)
			for i, e := range b {
				if i%3 != 1 {
					want = append(want, levelRow(e, `"info"`, fmt.Sprintf(`"m%d"`, i)))
				}
			}
			checkASRows(t, invokeOK(t, inst, b), want)
			if warmOf(inst).mod != mod {
				t.Fatalf("round %d: the host started a new guest: the warm instance was not reused", round)
			}
		}
	})

	t.Run("envelope members", func(t *testing.T) {
		// Keys and headers that contain `,"data":`, a key that is not UTF-8
		// (so the envelope has a key_base64 member), a stream name with quotes.
		e := Envelope{
			Stream: `s"t,"data":{"level":"debug"}`, Partition: 7, Offset: 99, Timestamp: baseTime,
			Key:     []byte("k,\"data\":\"x\"}\xff"),
			Headers: map[string]string{"data": `{"level":"debug"}`, `z,"data":1`: `"},"data":{`},
			Data:    []byte(`{"msg":"real","level":"warn"}`),
		}
		checkASRows(t, invokeOK(t, inst, []Envelope{e}), []string{levelRow(e, `"warn"`, `"real"`)})
	})

	t.Run("memory bounded", func(t *testing.T) {
		// The largest batch first; then memory must stay where it was over
		// 2000 batches of up to that size.
		big := make([]string, 2000)
		for i := range big {
			big[i] = fmt.Sprintf(`{"level":"info","msg":"%s"}`, strings.Repeat("x", 200+i%50))
		}
		invokeOK(t, inst, batch(0, big...))
		w := warmOf(inst)
		mod, before := w.mod, w.mem.Size()
		for n := 0; n < 2000; n++ {
			size := 1 + n%97
			if n%500 == 0 {
				size = len(big)
			}
			res := invokeOK(t, inst, batch(int64(n)*10000, big[:size]...))
			if len(res.Rows) != size {
				t.Fatalf("batch %d: %d rows, want %d", n, len(res.Rows), size)
			}
		}
		w = warmOf(inst)
		if w.mod != mod {
			t.Fatal("the host started a new guest")
		}
		after := w.mem.Size()
		t.Logf("memory: %d KiB after the largest batch, %d KiB after 2000 more", before>>10, after>>10)
		if after > before+2*pageSize {
			t.Fatalf("memory grew from %d to %d bytes over 2000 batches", before, after)
		}
	})
}

func TestAssemblyScriptFailures(t *testing.T) {
	h := newHost(t)
	code := buildASC(t, ascFault)
	f := load(t, h, Config{Runtime: RuntimeWasm, Code: code, Memory: 64 << 20, Timeout: 10 * time.Second})
	if f.Mode() != ModeWarm {
		t.Fatalf("Mode() = %s, want %s", f.Mode(), ModeWarm)
	}
	inst := newInstance(t, f)
	ok := func(first int64) {
		t.Helper()
		b := batch(first, `{"level":"info","msg":"a"}`, `{"level":"debug"}`, `{"level":"warn","msg":"b"}`)
		checkASRows(t, invokeOK(t, inst, b), []string{levelRow(b[0], `"info"`, `"a"`), levelRow(b[2], `"warn"`, `"b"`)})
	}
	ok(0)

	t.Run("fail", func(t *testing.T) {
		ierr := invokeErr(t, inst, batch(10, `{"level":"info","msg":"a"}`, `{"op":"fail"}`, `{"msg":"c"}`))
		if ierr.Kind != KindError || !strings.Contains(ierr.Err.Error(), "record at offset 11 asked to fail") {
			t.Fatalf("got %s (%v), want kind %s naming offset 11", ierr.Kind, ierr.Err, KindError)
		}
		if !strings.Contains(string(ierr.Log), "failing at offset 11") {
			t.Fatalf("log %q lacks the guest's stderr line", ierr.Log)
		}
		ok(20)
	})

	t.Run("abort", func(t *testing.T) {
		ierr := invokeErr(t, inst, batch(30, `{"op":"abort"}`))
		if ierr.Kind != KindTrap || !strings.Contains(string(ierr.Log), "abort: record asked to abort") {
			t.Fatalf("got %s (%v), log %q: want kind %s with the abort message in the log", ierr.Kind, ierr.Err, ierr.Log, KindTrap)
		}
		ok(40)
	})

	t.Run("loop", func(t *testing.T) {
		inst := newInstance(t, load(t, h, Config{Runtime: RuntimeWasm, Code: code, Memory: 64 << 20, Timeout: 300 * time.Millisecond}))
		b := batch(50, `{"level":"info","msg":"a"}`)
		checkASRows(t, invokeOK(t, inst, b), []string{levelRow(b[0], `"info"`, `"a"`)})
		start := time.Now()
		ierr := invokeErr(t, inst, batch(60, `{"level":"info"}`, `{"op":"loop"}`))
		elapsed := time.Since(start)
		if ierr.Kind != KindTimeout {
			t.Fatalf("got %s (%v), want %s", ierr.Kind, ierr.Err, KindTimeout)
		}
		if elapsed > 30*time.Second {
			t.Fatalf("the looping guest was stopped after %v (timeout 300ms)", elapsed)
		}
		b = batch(70, `{"level":"info","msg":"after"}`)
		checkASRows(t, invokeOK(t, inst, b), []string{levelRow(b[0], `"info"`, `"after"`)})
	})
}
