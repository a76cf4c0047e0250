package s3test

import (
	"os"
	"path/filepath"
	"syscall"
)

// xattrsWork reports whether dir's filesystem takes user extended attributes,
// where versitygw's posix backend keeps object metadata by default.
func xattrsWork(dir string) bool {
	p := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return false
	}
	defer os.Remove(p)
	return syscall.Setxattr(p, "user.sluice-probe", []byte("1"), 0) == nil
}
