package sink

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// TestZombieWriterIsFenced: a writer whose partition was claimed by a newer
// writer (a zombie after a rebalance) cannot flush: it writes no file and no
// progress, while the new owner goes on.
func TestZombieWriterIsFenced(t *testing.T) {
	d := newDir(t)
	zombie, _ := open(t, testConfig(d))
	add(t, zombie, tsRows(t, 0, "2026-11-22T03:00:00Z"), 0, 0)

	owner, next := open(t, testConfig(d))
	if next != -1 {
		t.Fatalf("new owner resumes at %d", next)
	}
	_, err := zombie.Flush(t.Context())
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie Flush: %v, want ErrFenced", err)
	}
	if got := keys(t, d, "tables/"); len(got) != 0 {
		t.Fatalf("zombie wrote %v", got)
	}
	add(t, owner, tsRows(t, 0, "2026-11-22T03:00:00Z"), 0, 0)
	if n := flush(t, owner); n != 1 {
		t.Fatalf("owner Flush = %d", n)
	}
	if p := progress(t, d); p.Next != 1 || p.Epoch != 2 {
		t.Fatalf("progress %+v", p)
	}
	// The zombie stays fenced on retry.
	if _, err := zombie.Flush(t.Context()); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie retry: %v", err)
	}
	if got := strings.Join(tableRows(t, d), "\n"); strings.Count(got, "\n") != 0 {
		t.Fatalf("table: %s", got)
	}
}

// stallBucket stalls the first Put of a key containing stall until release
// is closed, after signalling reached: a zombie whose upload passed its
// epoch check just before a new owner's claim, and lands after it.
type stallBucket struct {
	*objstore.Dir
	stall            string
	once             sync.Once
	reached, release chan struct{}
}

func (b *stallBucket) Put(ctx context.Context, key string, data []byte) error {
	if strings.Contains(key, b.stall) {
		stalled := false
		b.once.Do(func() { stalled = true })
		if stalled {
			close(b.reached)
			<-b.release
		}
	}
	return b.Dir.Put(ctx, key, data)
}

// TestLateZombieUploadIsNeverVisible: a zombie's file upload that lands
// after the new owner rolled its flush back, and after the new owner wrote
// the same records again in files of its own (batched differently), is in
// no manifest: the table holds every row once, and garbage collection
// deletes the late file.
func TestLateZombieUploadIsNeverVisible(t *testing.T) {
	d := newDir(t)
	sb := &stallBucket{Dir: d, stall: "hour=04", reached: make(chan struct{}), release: make(chan struct{})}
	zombie, _ := open(t, testConfig(sb))
	addTwoHours(t, zombie) // offsets 10..14 in hours 03 and 04
	zombieDone := make(chan error, 1)
	go func() {
		_, err := zombie.Flush(t.Context())
		zombieDone <- err
	}()
	<-sb.reached // the hour=03 file is written, the hour=04 upload is under way

	owner, next := open(t, testConfig(d)) // rolls the zombie's flush back
	if next != 10 {
		t.Fatalf("claim after the rolled-back flush: next %d, want 10", next)
	}
	add(t, owner, tsRows(t, 10, "2026-11-22T03:00:00Z", "2026-11-22T04:00:00Z"), 10, 11)
	flush(t, owner)
	add(t, owner, tsRows(t, 12, "2026-11-22T03:01:00Z", "2026-11-22T04:01:00Z", "2026-11-22T03:02:00Z"), 12, 14)
	if n := flush(t, owner); n != 15 {
		t.Fatalf("owner Flush = %d", n)
	}
	close(sb.release) // the zombie's upload lands
	if err := <-zombieDone; !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie Flush: %v, want ErrFenced", err)
	}
	want := strings.Split(twoHoursTable, "\n")
	slices.Sort(want)
	got := tableRows(t, d)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := len(dirRows(t, d)); n != len(want)+2 {
		t.Fatalf("directory holds %d rows, want the late file's 2 besides the table's %d", n, len(want))
	}
	src := []Source{{Pipeline: "p1", Stream: "logs", Partition: 2}}
	if n, err := CollectGarbage(t.Context(), d, "app_logs", src, slog.New(slog.DiscardHandler)); err != nil || n != 1 {
		t.Fatalf("CollectGarbage = %d, %v; want the late file deleted", n, err)
	}
	if n := len(dirRows(t, d)); n != len(want) {
		t.Fatalf("directory holds %d rows after garbage collection, want %d", n, len(want))
	}
}

// TestCollectGarbageSkipsUnadoptedPartitions: a partition whose progress
// predates manifests keeps all its files, and does not stop the collection
// of the table's other partitions.
func TestCollectGarbageSkipsUnadoptedPartitions(t *testing.T) {
	d := newDir(t)
	w, _ := open(t, testConfig(d)) // partition 2, with a manifest
	add(t, w, tsRows(t, 0, "2026-11-22T03:00:00Z"), 0, 0)
	flush(t, w)
	stray := "tables/app_logs/dt=2026-11-22/hour=03/logs-2-5-9-7.parquet" // in no manifest
	legacy := "tables/app_logs/dt=2026-11-22/hour=03/logs-1-0-9.parquet"  // of a partition not adopted yet
	for _, k := range []string{stray, legacy} {
		if err := d.Put(t.Context(), k, []byte("PAR1")); err != nil {
			t.Fatal(err)
		}
	}
	putJSON(t, d, "_sluice/progress/p1/logs/1.json", Progress{Next: 10, Epoch: 1})
	src := []Source{{Pipeline: "p1", Stream: "logs", Partition: 1}, {Pipeline: "p1", Stream: "logs", Partition: 2}}
	if n, err := CollectGarbage(t.Context(), d, "app_logs", src, slog.New(slog.DiscardHandler)); err != nil || n != 1 {
		t.Fatalf("CollectGarbage = %d, %v; want the stray file of partition 2 deleted", n, err)
	}
	if got := keys(t, d, "tables/"); !slices.Contains(got, legacy) || slices.Contains(got, stray) {
		t.Fatalf("files after collection: %v", got)
	}
}
