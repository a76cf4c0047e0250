//go:build !wasip1

package sluicefn

import "os"

// serve speaks the protocol on stdin/stdout and exits when stdin ends.
// os.Stdout is pointed at stderr first, so that fmt.Print* in a handler goes
// to the log and cannot corrupt the protocol.
func serve(h BatchHandler) {
	out := os.Stdout
	os.Stdout = os.Stderr
	os.Exit(serveStdio(h, os.Stdin, out))
}
