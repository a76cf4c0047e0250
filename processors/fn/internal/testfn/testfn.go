// Package testfn is the conformance test function of package fn, written
// with the Go SDK. testdata/conform builds it for every runtime;
// testdata/conform.py and testdata/oneshot implement the same behaviour.
//
// Each record's data is an object; its "op" member picks the behaviour:
//
//	""       emit "rows" rows (default 1), described below
//	"log"    write "log at offset N" to stderr, then as ""
//	"print"  print "printed at offset N" with fmt.Println (Go: goes to the log), then as ""
//	"fail"   write "failing at offset N" to stderr, fail the batch ("failed at offset N")
//	"loop"   spin forever
//	"sleep"  sleep "ms" milliseconds, then as ""
//	"alloc"  allocate memory without bound
//	"panic"  panic
//	"exit"   exit with code 3
//	"junk"   write a line that is not JSON where rows go
//
// A row is {"stream","partition","offset","key" (string or null),"ts" (RFC 3339
// nanoseconds UTC),"hdr" (header "h" or null),"i" (0..rows-1),"data"}.
package testfn

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/sluice-dev/sluice/sdk/go/sluicefn"
)

var (
	spins int64
	hoard [][]byte
	row   sluicefn.Row
)

// Handle is the record handler.
func Handle(r *sluicefn.Record, emit sluicefn.Emit) error {
	op, _ := r.String("op")
	switch op {
	case "log":
		fmt.Fprintf(os.Stderr, "log at offset %d\n", r.Offset)
	case "print":
		fmt.Printf("printed at offset %d\n", r.Offset)
	case "fail":
		fmt.Fprintf(os.Stderr, "failing at offset %d\n", r.Offset)
		return fmt.Errorf("failed at offset %d", r.Offset)
	case "loop":
		for {
			spins++
		}
	case "sleep":
		ms, _ := r.Int("ms")
		time.Sleep(time.Duration(ms) * time.Millisecond)
	case "alloc":
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			hoard = append(hoard, b)
		}
	case "panic":
		panic(fmt.Sprintf("boom at offset %d", r.Offset))
	case "exit":
		os.Exit(3)
	case "junk":
		return emit(json.RawMessage("this is not json"))
	}
	return emitRows(r, emit)
}

func emitRows(r *sluicefn.Record, emit sluicefn.Emit) error {
	n, ok := r.Int("rows")
	if !ok {
		n = 1
	}
	for i := int64(0); i < n; i++ {
		row.Reset().String("stream", r.Stream).Int("partition", int64(r.Partition)).Int("offset", r.Offset)
		if r.Key != nil {
			row.String("key", string(r.Key))
		} else {
			row.Null("key")
		}
		row.Time("ts", r.Timestamp())
		if h, ok := r.Header("h"); ok {
			row.String("hdr", h)
		} else {
			row.Null("hdr")
		}
		if err := emit(row.Int("i", i).Raw("data", r.Data)); err != nil {
			return err
		}
	}
	return nil
}
