// Command noop is the lightest possible SDK function, one small row per
// record, for measuring the runtimes' own overhead.
package main

import "github.com/sluice-dev/sluice/sdk/go/sluicefn"

func main() {
	var row sluicefn.Row
	sluicefn.HandleRecords(func(r *sluicefn.Record, emit sluicefn.Emit) error {
		return emit(row.Reset().Int("offset", r.Offset))
	})
}
