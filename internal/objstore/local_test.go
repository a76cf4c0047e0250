package objstore

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirAcceptance(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	AcceptanceTest(t, d)
	VersionedAcceptanceTest(t, d)
}

func TestDirListSkipsTemporaryFiles(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(d.Root, "t"), 0o755)
	os.WriteFile(filepath.Join(d.Root, "t", ".tmp-123"), []byte("partial"), 0o644)
	n := 0
	d.List(t.Context(), "t/", func(string) error { n++; return nil })
	if n != 0 {
		t.Fatalf("List yielded %d temporary files", n)
	}
}
