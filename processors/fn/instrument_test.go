package fn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// A small assembler for hand-made modules.

func wasmSec(id byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(binary.AppendUvarint([]byte{id}, uint64(len(body))), body...)
}

func wasmVec(items ...[]byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(items))), bytes.Join(items, nil)...)
}

func wasmStr(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }

// wasmBody is a function body without locals.
func wasmBody(code ...byte) []byte {
	b := append([]byte{0x00}, code...)
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

func wasmModule(sections ...[]byte) []byte {
	return append(append([]byte(nil), wasmHeader...), bytes.Join(sections, nil)...)
}

var (
	voidType = []byte{0x60, 0x00, 0x00}
	spinBody = wasmBody(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b) // loop br 0 end end
)

// spinningStartModule is a WASI command whose start section spins forever:
// its guest code runs during instantiation unless instrument moves it.
func spinningStartModule() []byte {
	return wasmModule(
		wasmSec(1, wasmVec(voidType)),
		wasmSec(3, wasmVec([]byte{0}, []byte{0})),
		wasmSec(7, wasmVec(append(wasmStr("_start"), 0x00, 0x01))),
		wasmSec(8, []byte{0}),
		wasmSec(10, wasmVec(spinBody, wasmBody(0x0b))),
	)
}

// TestInstrumentStartSectionIsInterruptible: a start section that never ends
// is stopped by the timeout like any other guest code.
func TestInstrumentStartSectionIsInterruptible(t *testing.T) {
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeWasm, Code: spinningStartModule(), Timeout: 300 * time.Millisecond}))
	start := time.Now()
	if ierr := invokeErr(t, inst, batch(0, `{}`)); ierr.Kind != KindTimeout {
		t.Fatalf("got %s (%v)", ierr.Kind, ierr.Err)
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Fatalf("Invoke returned after %v", elapsed)
	}
}

// TestInstrumentAddsSections: a module with neither globals nor exports gets
// both, in the order the binary format requires, and the interrupt stops it.
func TestInstrumentAddsSections(t *testing.T) {
	mod := wasmModule(
		wasmSec(1, wasmVec(voidType)),
		wasmSec(3, wasmVec([]byte{0})),
		wasmSec(8, []byte{0}),
		wasmSec(0, wasmStr(".debug_info"), []byte{1, 2, 3}),
		wasmSec(10, wasmVec(spinBody)),
	)
	out, err := instrument(mod)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(".debug_info")) {
		t.Error("the .debug_info section is still there")
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))
	defer r.Close(ctx)
	m, err := r.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatalf("instrumented module does not instantiate: %v", err)
	}
	in := newInterrupter()
	if err := in.bind(m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	disarm := in.arm(ctx)
	_, err = m.ExportedFunction(startExport).Call(ctx)
	disarm()
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !in.fired() {
		t.Fatalf("got %v, want the interrupt's trap", err)
	}
}

// TestInterruptWakesSleepingGuest: a guest sleeping far past its timeout is
// woken and stopped, in both wasm modes.
func TestInterruptWakesSleepingGuest(t *testing.T) {
	for _, target := range []string{targetWarm, targetCommand} {
		t.Run(target, func(t *testing.T) {
			h := newHost(t)
			inst := newInstance(t, load(t, h, Config{Runtime: RuntimeWasm, Code: buildCode(t, "./testdata/conform", target), Timeout: 300 * time.Millisecond}))
			start := time.Now()
			if ierr := invokeErr(t, inst, batch(0, `{"op":"sleep","ms":600000}`)); ierr.Kind != KindTimeout {
				t.Fatalf("got %s (%v)", ierr.Kind, ierr.Err)
			}
			if elapsed := time.Since(start); elapsed > 60*time.Second {
				t.Fatalf("Invoke returned after %v", elapsed)
			}
			invokeOK(t, inst, batch(1, `{}`))
		})
	}
}

// TestInstrumentRejects: what instrument cannot handle is an error, never a
// panic or a silently wrong module.
func TestInstrumentRejects(t *testing.T) {
	reserved := wasmModule(
		wasmSec(1, wasmVec(voidType)),
		wasmSec(3, wasmVec([]byte{0})),
		wasmSec(7, wasmVec(append(wasmStr(interruptExport), 0x00, 0x00))),
		wasmSec(10, wasmVec(wasmBody(0x0b))),
	)
	unknownOp := wasmModule(
		wasmSec(1, wasmVec(voidType)),
		wasmSec(3, wasmVec([]byte{0})),
		wasmSec(10, wasmVec(wasmBody(0x06, 0x40, 0x0b, 0x0b))), // try (exception handling)
	)
	for name, c := range map[string]struct {
		mod  []byte
		want string
	}{
		"empty":     {nil, "not a WebAssembly module"},
		"text":      {[]byte("(module)"), "not a WebAssembly module"},
		"component": {[]byte{0, 'a', 's', 'm', 0x0d, 0, 1, 0}, "components are not supported"},
		"reserved":  {reserved, "a name sluice reserves"},
		"opcode":    {unknownOp, "unsupported opcode 0x06"},
		"truncated": {spinningStartModule()[:30], "unexpected end"},
	} {
		_, err := instrument(c.mod)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
}

// TestInstrumentSurvivesDamage cuts and flips bytes of a real module: the
// result is an error or a module, never a panic.
func TestInstrumentSurvivesDamage(t *testing.T) {
	mod := buildCode(t, "./testdata/noop", targetWarm)
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 300; k++ {
		b := bytes.Clone(mod[:rng.IntN(len(mod))+1])
		for f := 0; f < 4; f++ {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		_, _ = instrument(b)
	}
}

// TestInstrumentKeepsBehaviour: every module the tests build still validates
// and exports the interrupt global after instrumenting (the conformance suite
// runs them).
func TestInstrumentKeepsBehaviour(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	for _, c := range []struct{ pkg, target string }{
		{"./testdata/conform", targetWarm}, {"./testdata/conform", targetCommand},
		{"./testdata/noop", targetWarm}, {"../../examples/accesslog", targetWarm},
	} {
		out, err := instrument(buildCode(t, c.pkg, c.target))
		if err != nil {
			t.Fatalf("%s %s: %v", c.pkg, c.target, err)
		}
		cm, err := r.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("%s %s: instrumented module does not compile: %v", c.pkg, c.target, err)
		}
		m, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := m.ExportedGlobal(interruptExport).(api.MutableGlobal); !ok || g.Type() != api.ValueTypeI32 {
			t.Fatalf("%s %s: no mutable i32 export %q", c.pkg, c.target, interruptExport)
		}
		_ = m.Close(ctx)
	}
	if _, err := instrument(wasmModule()); err != nil {
		t.Fatal(errors.Join(errors.New("an empty module"), err))
	}
}

// TestSpinningGuestLetsTheWorldStop: while a guest spins, the rest of the
// process still gets through a stop-the-world (here a forced garbage
// collection). Without the checks' calls into Go the collection, and the
// timeout with it, would wait for the guest forever.
func TestSpinningGuestLetsTheWorldStop(t *testing.T) {
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeWasm, Code: buildCode(t, "./testdata/conform", targetWarm), Timeout: 3 * time.Second}))
	invokeOK(t, inst, batch(0, `{}`))
	done := make(chan *InvokeError, 1)
	go func() {
		_, err := inst.Invoke(context.Background(), batch(1, `{"op":"loop"}`))
		ierr, _ := err.(*InvokeError)
		done <- ierr
	}()
	time.Sleep(200 * time.Millisecond) // let the guest spin
	collected := make(chan struct{})
	go func() {
		runtime.GC()
		close(collected)
	}()
	select {
	case <-collected:
	case <-time.After(2 * time.Second):
		t.Fatal("a garbage collection waited 2 s for the spinning guest")
	}
	if ierr := <-done; ierr == nil || ierr.Kind != KindTimeout {
		t.Fatalf("got %v, want a timeout", ierr)
	}
}

// TestCheckModuleRefusesForeignImports: a module that imports anything but
// WASI preview1 could never be instantiated; it is refused when loaded (and
// at deploy, which calls CheckModule), naming the import.
func TestCheckModuleRefusesForeignImports(t *testing.T) {
	imp := append(append(wasmStr("env"), wasmStr("abort")...), 0x00, 0x00) // func of type 0
	mod := wasmModule(
		wasmSec(1, wasmVec(voidType)),
		wasmSec(2, wasmVec(imp)),
		wasmSec(3, wasmVec([]byte{0})),
		wasmSec(7, wasmVec(append(wasmStr("_start"), 0x00, 0x01))),
		wasmSec(10, wasmVec(wasmBody(0x0b))),
	)
	if err := CheckModule(mod); err == nil || !strings.Contains(err.Error(), "imports env.abort") {
		t.Fatalf("CheckModule: %v", err)
	}
	h := newHost(t)
	if _, err := h.Load(t.Context(), Config{Runtime: RuntimeWasm, Code: mod}); err == nil || !strings.Contains(err.Error(), "imports env.abort") {
		t.Fatalf("Load: %v", err)
	}
	if err := CheckModule(buildCode(t, "./testdata/conform", targetWarm)); err != nil {
		t.Fatalf("a Go WASI module: %v", err)
	}
}

// TestWarmModuleWithoutMemoryIsRefused: the warm ABI passes batches through
// an exported memory; a module without one is refused when loaded (the
// memory instrument adds for memory.grow does not count).
func TestWarmModuleWithoutMemoryIsRefused(t *testing.T) {
	mod := wasmModule(
		wasmSec(1, wasmVec([]byte{0x60, 0x01, 0x7f, 0x01, 0x7f}, []byte{0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7e})),
		wasmSec(3, wasmVec([]byte{0}, []byte{1})),
		wasmSec(7, wasmVec(append(wasmStr("sluice_alloc"), 0x00, 0x00), append(wasmStr("sluice_handle"), 0x00, 0x01))),
		wasmSec(10, wasmVec(wasmBody(0x20, 0x00, 0x0b), wasmBody(0x42, 0x00, 0x0b))),
	)
	h := newHost(t)
	if _, err := h.Load(t.Context(), Config{Runtime: RuntimeWasm, Code: mod}); err == nil || !strings.Contains(err.Error(), "no memory") {
		t.Fatalf("Load: %v", err)
	}
}

// BenchmarkInstrument measures the rewrite of a Go module (a few MB), done
// once per function version when it is loaded.
func BenchmarkInstrument(b *testing.B) {
	mod := buildCode(b, "./testdata/conform", targetWarm)
	b.SetBytes(int64(len(mod)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := instrument(mod); err != nil {
			b.Fatal(err)
		}
	}
}
