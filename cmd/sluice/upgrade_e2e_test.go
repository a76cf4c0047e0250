package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
	"github.com/sluice-dev/sluice/sink"
)

// TestUpgradeAdoptsTablesWithoutManifests starts this release on a data
// directory written by the release before manifests (commit 6c1d197:
// `sluice up`, 400 log records in 6 files over 4 partitions, one of them
// merged by its compactor; testdata/release-6c1d197). The table is queryable
// as it was, every partition's progress adopts its files into a manifest
// once, and new records add to it.
func TestUpgradeAdoptsTablesWithoutManifests(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(data, os.DirFS("testdata/release-6c1d197/data")); err != nil {
		t.Fatal(err)
	}
	s := e2e.Up(t, data)
	s.WaitCount("select count(*) from logs", 400, time.Minute)
	if n, err := s.Count("select count(distinct attrs->>'id') from logs"); err != nil || n != 400 {
		t.Fatalf("distinct ids after the upgrade: %d, %v", n, err)
	}
	putHTTP(t, s, logLines("after the upgrade", 100))
	s.WaitCount("select count(*) from logs", 500, time.Minute)

	adopted := 0
	for p := range 4 {
		raw, err := os.ReadFile(filepath.Join(data, "objects", "_sluice", "progress", "logs", "logs", strconv.Itoa(p)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var prog sink.Progress
		if err := json.Unmarshal(raw, &prog); err != nil || prog.Manifest == nil {
			t.Fatalf("progress of partition %d after the upgrade has no manifest: %s", p, raw)
		}
		for _, f := range prog.Manifest.Files {
			if f.Schema == "" { // adopted, not written by this release
				adopted++
			}
		}
	}
	if adopted != 6 {
		t.Fatalf("%d files adopted into the manifests, want the old release's 6", adopted)
	}
	s.Stop()
	// Restarted, the table is the manifests' (no listing): the same rows.
	s = e2e.Up(t, data)
	s.WaitCount("select count(*) from logs", 500, time.Minute)
}
