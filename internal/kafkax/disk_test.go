package kafkax

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestDiskFull: an UNKNOWN_SERVER_ERROR from the embedded broker is put
// down to a full disk exactly when its data directory has less than the
// bound free; other errors are never.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	err := fmt.Errorf("produce: %w", kerr.UnknownServerError)
	if why := DiskFull(err, dir, 1<<62); !strings.Contains(why, "disk is full") || !strings.Contains(why, dir) {
		t.Fatalf("with less free than the bound: %q", why)
	}
	if why := DiskFull(err, dir, 1); why != "" {
		t.Fatalf("with room to spare: %q", why)
	}
	if why := DiskFull(kerr.MessageTooLarge, dir, 1<<62); why != "" {
		t.Fatalf("another error: %q", why)
	}
}
