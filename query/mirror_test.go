package query

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// TestMirrorSync copies new table files, keeps existing copies, and removes
// copies whose objects are gone; the source here is a second directory
// bucket (the S3 path is covered end to end by the crash test on S3).
func TestMirrorSync(t *testing.T) {
	src, err := objstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	put := func(key, v string) {
		if err := src.Put(ctx, key, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	put("tables/t/dt=2026-11-22/hour=01/s-0-0-9.parquet", "a")
	put("tables/t/dt=2026-11-22/hour=02/s-0-10-19.parquet", "b")
	put("tables/other/dt=2026-11-22/hour=01/s-0-0-9.parquet", "c")
	put("tables/t/notes.txt", "not a table file")
	put("tables/t/dt=2026-11-22/hour=01/s-0-0-4.parquet", "superseded")
	m := &Mirror{Bucket: src, Dir: t.TempDir(), Visible: func(keys []string) []string {
		return slices.DeleteFunc(keys, func(k string) bool { return strings.HasSuffix(k, "s-0-0-4.parquet") })
	}}
	leftover := filepath.Join(m.TableDir("t"), "dt=2026-11-22", ".fetch-123")
	os.MkdirAll(filepath.Dir(leftover), 0o755)
	os.WriteFile(leftover, []byte("a crash's partial download"), 0o644)
	if err := m.Sync(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); err == nil {
		t.Fatal("a crash's temporary file was not removed")
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(m.TableDir("t"), rel))
		if err != nil {
			return "<missing>"
		}
		return string(b)
	}
	if read("dt=2026-11-22/hour=01/s-0-0-9.parquet") != "a" || read("dt=2026-11-22/hour=02/s-0-10-19.parquet") != "b" {
		t.Fatal("files not mirrored")
	}
	if read("dt=2026-11-22/hour=01/s-0-0-4.parquet") != "<missing>" {
		t.Fatal("a file Visible hides was downloaded")
	}
	if read("notes.txt") != "<missing>" {
		t.Fatal("a non-Parquet object was mirrored")
	}
	if _, err := os.Stat(filepath.Join(m.TableDir("other"))); err == nil {
		t.Fatal("another table was mirrored")
	}
	// Compaction replaced both files by one.
	src.Delete(ctx, "tables/t/dt=2026-11-22/hour=01/s-0-0-9.parquet")
	src.Delete(ctx, "tables/t/dt=2026-11-22/hour=02/s-0-10-19.parquet")
	put("tables/t/dt=2026-11-22/hour=01/s-0-0-19.parquet", "ab")
	if err := m.Sync(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if read("dt=2026-11-22/hour=01/s-0-0-9.parquet") != "<missing>" || read("dt=2026-11-22/hour=02/s-0-10-19.parquet") != "<missing>" || read("dt=2026-11-22/hour=01/s-0-0-19.parquet") != "ab" {
		t.Fatal("mirror did not follow the replacement")
	}
}

// TestMirrorGrace: a copy whose object is gone stays for Grace (a query
// that listed it may still be reading it) but is no longer offered to new
// queries (Current), and is removed after Grace.
func TestMirrorGrace(t *testing.T) {
	src, err := objstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	key := "tables/t/dt=2026-11-22/hour=01/s-0-0-9.parquet"
	if err := src.Put(ctx, key, []byte("a")); err != nil {
		t.Fatal(err)
	}
	m := &Mirror{Bucket: src, Dir: t.TempDir(), Grace: time.Hour}
	if err := m.Sync(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(m.Dir, filepath.FromSlash(key))
	if got := m.Current([]string{local}); len(got) != 1 {
		t.Fatalf("Current of a live copy: %v", got)
	}
	src.Delete(ctx, key)
	if err := m.Sync(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(local); err != nil {
		t.Fatal("the copy was removed within its grace period")
	}
	if got := m.Current([]string{local}); len(got) != 0 {
		t.Fatalf("Current offers a copy whose object is gone: %v", got)
	}
	m.Grace = 0
	if err := m.Sync(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(local); err == nil {
		t.Fatal("the copy outlived its grace period")
	}
}
