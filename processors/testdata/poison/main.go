// Command poison is the test function of processors' function tests: it
// copies each record's message and offset into a row, fails the batch on a
// record with "poison": true and loops forever on one with "loop": true, both
// only while the environment has FAIL_POISON=1.
package main

import (
	"fmt"
	"os"

	"github.com/sluice-dev/sluice/sdk/go/sluicefn"
)

func main() {
	failPoison := os.Getenv("FAIL_POISON") == "1"
	var row sluicefn.Row
	sluicefn.HandleRecords(func(r *sluicefn.Record, emit sluicefn.Emit) error {
		if p, _ := r.Bool("poison"); p && failPoison {
			fmt.Fprintf(os.Stderr, "poison pill at offset %d\n", r.Offset)
			return fmt.Errorf("poison pill at offset %d", r.Offset)
		}
		if l, _ := r.Bool("loop"); l && failPoison {
			for {
			}
		}
		msg, _ := r.String("message")
		return emit(row.Reset().String("message", msg).Int("src_offset", r.Offset))
	})
}
