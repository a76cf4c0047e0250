// Package sluicefn is the Go SDK for sluice processor functions.
//
// A function is a main package that calls HandleRecords (or HandleBatch) from
// main:
//
//	func main() {
//		sluicefn.HandleRecords(func(r *sluicefn.Record, emit func(row any) error) error {
//			return emit(new(sluicefn.Row).Int("offset", r.Offset).Raw("data", r.Data))
//		})
//	}
//
// The same source builds three ways (see docs/functions.md in the sluice repository):
//
//   - GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared: runtime "wasm", warm mode.
//     The module exports sluice_init, sluice_alloc and sluice_handle; the host keeps
//     the instance and hands it batch after batch. HandleRecords registers the
//     handler and returns.
//   - GOOS=wasip1 GOARCH=wasm go build: runtime "wasm", one-shot mode. A fresh
//     instance per batch reads envelope lines from stdin until EOF.
//   - go build (native): runtime "exec". HandleRecords serves the framed protocol on
//     stdin/stdout until stdin is closed, and never returns. Fed plain envelope
//     lines (no batch header) it works one-shot, which is handy for trying a
//     function by hand: `./fn < envelopes.ndjson`.
//
// Contracts: records arrive in offset order, one batch at a time, never
// concurrently. A Record and every byte slice reachable from it are valid only
// until the handler returns: copy what you keep. Rows are emitted in order; a
// handler error fails the whole batch (its rows are discarded and the batch is
// retried by the engine). A panic kills the instance (reported as a trap or a
// crash). Anything printed with fmt.Print* (os.Stdout) or to os.Stderr goes to the
// batch's log, never into the output.
//
// The package has no dependencies outside the standard library.
package sluicefn

import (
	"fmt"
)

// Emit appends one output row. row may be a *Row, a []byte or json.RawMessage
// holding one JSON object (passed through unchecked: it must be a valid JSON
// object), or any value encoding/json marshals to an object (a struct, a map).
type Emit = func(row any) error

// RecordHandler handles one record, emitting zero or more rows.
type RecordHandler = func(r *Record, emit Emit) error

// BatchHandler handles one batch; records are in offset order.
type BatchHandler = func(records []Record, emit Emit) error

// HandleRecords runs h for every record of every batch, in order. Call it from
// main. See the package documentation for what it does in each build mode.
func HandleRecords(h RecordHandler) {
	serve(perRecord(h))
}

// HandleBatch runs h once per batch. Call it from main.
func HandleBatch(h BatchHandler) {
	serve(h)
}

func perRecord(h RecordHandler) BatchHandler {
	return func(records []Record, emit Emit) error {
		for i := range records {
			if err := h(&records[i], emit); err != nil {
				return fmt.Errorf("record at offset %d: %w", records[i].Offset, err)
			}
		}
		return nil
	}
}

// DecodeEnvelope decodes one envelope line into r, for tests and tools; r
// aliases line.
func DecodeEnvelope(line []byte, r *Record) error {
	var d decoder
	return d.decode(line, r)
}

// Process runs h natively over envelope lines (JSON lines, as docs/functions.md
// describes) and returns the rows as JSON lines: a function's unit tests can
// call it directly.
func Process(h RecordHandler, envelopes []byte) ([]byte, error) {
	rows, err := newProcessor(perRecord(h)).oneShot(envelopes)
	return append([]byte(nil), rows...), err
}
