package objstore

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/s3test"
)

func TestDirStreamer(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	StreamerAcceptanceTest(t, d)
}

func TestS3Streamer(t *testing.T) {
	StreamerAcceptanceTest(t, newTestS3(t, s3test.StartServer(t), nil))
}
