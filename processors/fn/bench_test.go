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
			recs := make([]sluicefn.Record, len(bt))
			for i, e := range bt {
				recs[i] = sluicefn.Record{Stream: e.Stream, Partition: e.Partition, Offset: e.Offset,
					Key: e.Key, Timestamp: e.Timestamp, Headers: e.Headers, Data: e.Data}
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
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = appendEnvelopes(appendHeader(buf[:0], len(bt)), bt); err != nil {
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
