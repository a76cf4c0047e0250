package objstore

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// StreamerAcceptanceTest checks the Streamer contract on an empty bucket:
// PutFile stores a file of several parts (over 16 MiB) that Get, Stat and
// Open then see whole, and Open of a missing key is ErrNotFound.
func StreamerAcceptanceTest(t *testing.T, s Streamer) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := s.Open(ctx, "missing/key"); !IsNotFound(err) {
		t.Fatalf("Open of a missing key: want ErrNotFound, got %v", err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 17<<16) // 17 MiB
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFile(ctx, "streamed/big", path); err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	if n, err := s.Stat(ctx, "streamed/big"); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat after PutFile: %d, %v", n, err)
	}
	r, n, err := s.Open(ctx, "streamed/big")
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Open: %d, %v", n, err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Open read %d bytes (%v), want the %d put", len(got), err, len(data))
	}
}
