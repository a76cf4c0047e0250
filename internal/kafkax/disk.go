package kafkax

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
)

// MinFreeDisk is the free space under which the embedded broker's data
// directory counts as full: below it the broker's writes (segments of
// records) start failing.
const MinFreeDisk = 64 << 20

// DiskFull says, for a produce error of the embedded broker whose data is
// in dir, whether the cause is a full disk, and then how to fix it ("" when
// it is not, or cannot be told). The embedded broker answers a write it
// cannot store with UNKNOWN_SERVER_ERROR, which alone tells the operator
// nothing. minFree is the bound (MinFreeDisk).
func DiskFull(err error, dir string, minFree uint64) string {
	if !errors.Is(err, kerr.UnknownServerError) {
		return ""
	}
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return ""
	}
	free := st.Bavail * uint64(st.Bsize)
	if free >= minFree {
		return ""
	}
	return fmt.Sprintf("the embedded broker's disk is full (%d MiB free under %s): free space there, or lower the streams' retention, then retry", free>>20, dir)
}
