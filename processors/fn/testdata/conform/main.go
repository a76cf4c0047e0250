// Command conform is the conformance test function (see package testfn),
// built with the Go SDK for wasm (warm and one-shot) and natively (exec).
package main

import (
	"github.com/sluice-dev/sluice/processors/fn/internal/testfn"
	"github.com/sluice-dev/sluice/sdk/go/sluicefn"
)

func main() {
	sluicefn.HandleRecords(testfn.Handle)
}
