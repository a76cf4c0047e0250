package sink

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/file"
)

// TestCompactKeepsJSONValues: merged files keep every row's own values,
// including JSON columns (a regression: values of later files overwrote
// earlier ones).
func TestCompactKeepsJSONValues(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	const perFile = 5000 // several pages per column chunk
	for i := range int64(3) {
		var lines []string
		for j := range int64(perFile) {
			o := i*perFile + j
			lines = append(lines, fmt.Sprintf(`{"ts":"2026-11-22T03:00:00Z","message":"m%d","id":%d}`, o, o))
		}
		add(t, w, logRows(t, i*perFile, lines...), i*perFile, i*perFile+perFile-1)
		flush(t, w)
	}
	beforeRows := tableRows(t, d)
	slices.Sort(beforeRows) // files are listed in lexical, not offset, order
	before := strings.Join(beforeRows, "\n")
	if n, err := w.Compact(t.Context()); err != nil || n != 3 {
		t.Fatalf("Compact = %d, %v", n, err)
	}
	afterRows := tableRows(t, d)
	slices.Sort(afterRows)
	if after := strings.Join(afterRows, "\n"); after != before {
		a, b := strings.Split(after, "\n"), strings.Split(before, "\n")
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("rows changed by compaction: row %d is\n%s\nwant\n%s", i, a[i], b[i])
			}
		}
		t.Fatalf("rows changed by compaction: %d rows, want %d", len(a), len(b))
	}
}

// TestCompactKeepsColumnTypes: the merged file has the table's Parquet
// types, the JSON logical type included (readers get it back as binary).
func TestCompactKeepsColumnTypes(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d))
	for i := range int64(2) {
		add(t, w, logRows(t, i, `{"ts":"2026-11-22T03:00:00Z","id":1}`), i, i)
		flush(t, w)
	}
	if n, err := w.Compact(t.Context()); err != nil || n != 2 {
		t.Fatalf("Compact = %d, %v", n, err)
	}
	f, err := file.OpenParquetFile(d.Path("tables/app_logs/dt=2026-11-22/hour=03/logs-2-0-1-1.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if lt := f.MetaData().Schema.Column(5).LogicalType(); lt.String() != "JSON" {
		t.Fatalf("attrs logical type in the merged file: %v, want JSON", lt)
	}
}
