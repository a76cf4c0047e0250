package fn

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/processors/fn/internal/testfn"
	"github.com/sluice-dev/sluice/sdk/go/sluicefn"
)

// Benchmarks: one batch per iteration, through each runtime, against calling
// the same Go handler directly. Per-record cost is reported as ns/record;
// the runtime's overhead is the difference to BenchmarkDirect.
//
//	go test ./processors/fn/ -run '^$' -bench . -benchmem

var benchSizes = []struct {
	name    string
	records int
	pad     int
}{
	{"1rec", 1, 100},
	{"100rec", 100, 100},
	{"1000rec", 1000, 100},
	{"1000rec-1KiB", 1000, 1000},
}

func benchBatch(records, pad int) []Envelope {
	datas := make([]string, records)
	p := strings.Repeat("x", pad)
	for i := range datas {
		datas[i] = fmt.Sprintf(`{"n":%d,"msg":%q}`, i, p)
	}
	return batch(0, datas...)
}

func runBench(b *testing.B, cfg Config) {
	runBenchHost(b, cfg, newHost)
}

func runBenchHost(b *testing.B, cfg Config, newHost func(testing.TB) *Host) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			h := newHost(b)
			inst := newInstance(b, load(b, h, cfg))
			bt := benchBatch(s.records, s.pad)
			invokeOK(b, inst, bt) // start the guest
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := inst.Invoke(context.Background(), bt)
				if err != nil || len(res.Rows) != s.records {
					b.Fatal(err)
				}
			}
			reportPerRecord(b, s.records)
		})
	}
}

func reportPerRecord(b *testing.B, records int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
}

func BenchmarkWasmWarm(b *testing.B) {
	runBench(b, Config{Runtime: RuntimeWasm, Code: buildCode(b, "./testdata/conform", targetWarm), Timeout: time.Minute})
}

// BenchmarkWasmWarmNoChecks is BenchmarkWasmWarm with the module compiled as
// it is, without sluice's interrupt checks (instrument.go), which sluice never
// does: it measures what the checks cost.
func BenchmarkWasmWarmNoChecks(b *testing.B) {
	cfg := Config{Runtime: RuntimeWasm, Code: buildCode(b, "./testdata/conform", targetWarm), Timeout: time.Minute}
	runBenchHost(b, cfg, newHostNoInterrupt)
}

// newHostNoInterrupt is newHost compiling modules without the interrupt
// checks. It can share the compilation cache: the uninstrumented bytes are
// another module to wazero.
func newHostNoInterrupt(tb testing.TB) *Host {
	h := newHost(tb)
	h.noInterrupt = true
	return h
}

func BenchmarkWasmOneShot(b *testing.B) {
	runBench(b, Config{Runtime: RuntimeWasm, Code: buildCode(b, "./testdata/conform", targetCommand), Timeout: time.Minute})
}

func BenchmarkExecGo(b *testing.B) {
	runBench(b, Config{Runtime: RuntimeExec, Code: buildCode(b, "./testdata/conform", targetNative), Timeout: time.Minute})
}

func BenchmarkExecPython(b *testing.B) {
	code, err := os.ReadFile("testdata/conform.py")
	if err != nil {
		b.Fatal(err)
	}
	runBench(b, Config{Runtime: RuntimeExec, Code: code, Timeout: time.Minute})
}

// BenchmarkDirect calls the handler in this process on Records made straight
// from the envelopes: the cost of the function itself, no runtime.
func BenchmarkDirect(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			bt := benchBatch(s.records, s.pad)
			var enc encoder
			if err := enc.appendEnvelopes(bt); err != nil {
				b.Fatal(err)
			}
			recs := make([]sluicefn.Record, len(bt))
			for i, line := range strings.Split(strings.TrimSuffix(string(enc.env), "\n"), "\n") {
				if err := sluicefn.DecodeEnvelope([]byte(line), &recs[i]); err != nil {
					b.Fatal(err)
				}
			}
			var out []byte
			emit := func(row any) error {
				out = append(out, row.(*sluicefn.Row).Bytes()...)
				out = append(out, '\n')
				return nil
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out = out[:0]
				for k := range recs {
					if err := testfn.Handle(&recs[k], emit); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportPerRecord(b, s.records)
		})
	}
}

// BenchmarkEncode is the host's side alone: envelopes out, rows checked.
func BenchmarkEncode(b *testing.B) {
	bt := benchBatch(1000, 100)
	var enc encoder
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := enc.encodeFrame(bt); err != nil {
			b.Fatal(err)
		}
	}
	reportPerRecord(b, len(bt))
}

func BenchmarkParseRows(b *testing.B) {
	row, _ := json.Marshal(map[string]any{"stream": "events", "offset": 123, "msg": strings.Repeat("x", 100), "i": 0})
	out := []byte(strings.Repeat(string(row)+"\n", 1000) + `{"__sluice":"ok"}` + "\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ierr := parseRows(out, true, 1000); ierr != nil {
			b.Fatal(ierr)
		}
	}
	reportPerRecord(b, 1000)
}

// BenchmarkOverhead runs the lightest function (testdata/noop) through each
// runtime: what remains is the runtime's own cost per batch and per record
// (compare 1rec with 1000rec).
func BenchmarkOverhead(b *testing.B) {
	sizes := benchSizes[:3]
	for _, c := range []struct {
		name    string
		cfg     func() Config
		newHost func(testing.TB) *Host
	}{
		{"wasm-warm", func() Config {
			return Config{Runtime: RuntimeWasm, Code: buildCode(b, "./testdata/noop", targetWarm), Timeout: time.Minute}
		}, newHost},
		{"wasm-warm-nochecks", func() Config {
			return Config{Runtime: RuntimeWasm, Code: buildCode(b, "./testdata/noop", targetWarm), Timeout: time.Minute}
		}, newHostNoInterrupt},
		{"exec-go", func() Config {
			return Config{Runtime: RuntimeExec, Code: buildCode(b, "./testdata/noop", targetNative), Timeout: time.Minute}
		}, newHost},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := c.newHost(b)
			inst := newInstance(b, load(b, h, c.cfg()))
			for _, s := range sizes {
				b.Run(s.name, func(b *testing.B) {
					bt := benchBatch(s.records, s.pad)
					invokeOK(b, inst, bt)
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := inst.Invoke(context.Background(), bt); err != nil {
							b.Fatal(err)
						}
					}
					reportPerRecord(b, s.records)
				})
			}
		})
	}
}
