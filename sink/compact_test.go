package sink

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/objstore"
)

func TestVisibleHidesMergedFiles(t *testing.T) {
	keys := []string{
		"tables/t/dt=2026-11-22/hour=03/s-0-0-9.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-10-19.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-0-19.parquet",  // merged: hides the two above
		"tables/t/dt=2026-11-22/hour=03/s-0-20-29.parquet", // after the merge
		"tables/t/dt=2026-11-22/hour=03/s-1-0-9.parquet",   // another partition
		"tables/t/dt=2026-11-22/hour=04/s-0-5-9.parquet",   // another directory
		"tables/t/dt=2026-11-22/hour=03/other.parquet",     // not the sink's
	}
	want := []string{
		"tables/t/dt=2026-11-22/hour=03/other.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-0-19.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-0-20-29.parquet",
		"tables/t/dt=2026-11-22/hour=03/s-1-0-9.parquet",
		"tables/t/dt=2026-11-22/hour=04/s-0-5-9.parquet",
	}
	if got := Visible(keys); !slices.Equal(got, want) {
		t.Fatalf("Visible =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCompactMergesCommittedSmallFiles: small committed files of a partition
// are merged into one with the same rows; files at or past the committed
// offset are left alone; the merged-away files are deleted at the next pass.
func TestCompactMergesCommittedSmallFiles(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	for i := range int64(5) { // five flushes, offsets 0..4 one at a time, all in hour 03
		add(t, w, tsRows(t, i, "2026-11-22T03:00:00Z"), i, i)
		flush(t, w)
	}
	before := strings.Join(tableRows(t, d), "\n")
	c := &Compactor{Bucket: d, Table: "app_logs", Committed: func(context.Context, string, int32) (int64, error) { return 4, nil }}
	n, err := c.Run(t.Context())
	if err != nil || n != 4 {
		t.Fatalf("Run = %d, %v; want 4 files merged (offset 4 is not committed)", n, err)
	}
	all := keys(t, d, "tables/")
	visible := Visible(all)
	wantVisible := []string{
		"tables/app_logs/dt=2026-11-22/hour=03/logs-2-0-3.parquet",
		"tables/app_logs/dt=2026-11-22/hour=03/logs-2-4-4.parquet",
	}
	if !slices.Equal(visible, wantVisible) {
		t.Fatalf("visible after merge: %v", visible)
	}
	if len(all) != 6 {
		t.Fatalf("merged-away files deleted before the next pass: %v", all)
	}
	if after := strings.Join(visibleRows(t, d), "\n"); after != before {
		t.Fatalf("rows changed by compaction:\n%s\nwant\n%s", after, before)
	}
	if _, err := c.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if all := keys(t, d, "tables/"); !slices.Equal(all, wantVisible) {
		t.Fatalf("after the second pass: %v", all)
	}
}

// visibleRows is tableRows restricted to the files a query reads.
func visibleRows(t *testing.T, b objstore.Bucket) []string {
	t.Helper()
	var out []string
	for _, k := range Visible(keys(t, b, "tables/")) {
		data, err := b.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		_, rows := readParquet(t, data)
		for _, r := range rows {
			out = append(out, k[:strings.LastIndex(k, "/")]+" "+r)
		}
	}
	return out
}
