//go:build wasip1

package sluicefn

import (
	"os"
	"unsafe"
)

// The warm ABI (docs/functions.md). A module built with -buildmode=c-shared is
// a WASI reactor: the host runs _initialize, then sluice_init, which runs the
// program's main; main calls HandleRecords, which only registers the handler.
// Then, per batch: sluice_alloc(len) → ptr, the host writes the request frame
// there, sluice_handle(ptr, len) → ptr<<32 | len of the response frame, valid
// until the next call.
//
// Built as a command (no -buildmode), main runs from _start and HandleRecords
// serves one batch: envelope lines from stdin until EOF, rows to stdout.

var (
	reactor bool
	handler BatchHandler
	proc    *processor
	inBuf   []byte
)

//go:linkname mainMain main.main
func mainMain()

func serve(h BatchHandler) {
	if reactor {
		handler = h
		return
	}
	out := os.Stdout
	os.Stdout = os.Stderr
	os.Exit(serveStdio(h, os.Stdin, out))
}

// sluiceInit runs main to register the handler; 0 means ready.
//
//go:wasmexport sluice_init
func sluiceInit() int32 {
	reactor = true
	mainMain()
	if handler == nil {
		os.Stderr.WriteString("sluicefn: main did not call HandleRecords or HandleBatch\n")
		return 1
	}
	proc = newProcessor(handler)
	return 0
}

// sluiceAlloc returns a buffer of size bytes for the next request frame.
//
//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 {
	if uint32(cap(inBuf)) < size {
		inBuf = make([]byte, size+size/4)
	}
	inBuf = inBuf[:size]
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&inBuf[0])))
}

// sluiceHandle processes the request frame written into the last
// sluice_alloc buffer and returns the response's ptr<<32 | len.
//
//go:wasmexport sluice_handle
func sluiceHandle(ptr, size uint32) uint64 {
	if proc == nil {
		return 0
	}
	in := inBuf
	if size == 0 || size > uint32(len(inBuf)) || ptr != uint32(uintptr(unsafe.Pointer(&inBuf[0]))) {
		in = nil
	} else {
		in = inBuf[:size]
	}
	out := proc.processFrame(in)
	return uint64(uintptr(unsafe.Pointer(&out[0])))<<32 | uint64(len(out))
}
