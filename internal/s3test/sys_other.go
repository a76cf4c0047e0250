//go:build !linux

package s3test

// xattrsWork is false off Linux: the server keeps metadata in a sidecar
// directory there.
func xattrsWork(string) bool { return false }
