package sink

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

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
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "epoch 1 (found epoch 2)") {
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

// TestLateZombieUploadRepeatsNoRow: a zombie's file upload that lands after
// the new owner rolled its flush back replaces a file of the new owner's
// repeat of that flush (same offsets, same name, same rows) instead of
// adding its rows a second time. The repeat is recorded in the progress, so
// an owner that crashes before it hands it on.
func TestLateZombieUploadRepeatsNoRow(t *testing.T) {
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

	first, next := open(t, testConfig(d)) // rolls the flush back
	if next != 10 || first.ReplayLast() != 14 {
		t.Fatalf("claim after the rolled-back flush: next %d, replay to %d; want 10, 14", next, first.ReplayLast())
	}
	owner, next := open(t, testConfig(d)) // the first new owner crashed: the repeat is handed on
	if next != 10 || owner.ReplayLast() != 14 || progress(t, d).Replay == nil {
		t.Fatalf("second claim: next %d, replay to %d", next, owner.ReplayLast())
	}
	add(t, owner, tsRows(t, 10, "2026-11-22T03:00:00Z", "2026-11-22T04:00:00Z"), 10, 11)
	if owner.Due(time.Now().Add(time.Hour)) {
		t.Fatal("Due before the repeat reached offset 14")
	}
	if n, err := owner.Flush(t.Context()); n != -1 || err != nil {
		t.Fatalf("Flush before the repeat reached offset 14: %d, %v; want -1 and nothing written", n, err)
	}
	add(t, owner, tsRows(t, 12, "2026-11-22T03:01:00Z", "2026-11-22T04:01:00Z", "2026-11-22T03:02:00Z"), 12, 14)
	if !owner.Due(time.Now()) {
		t.Fatal("not Due once the repeat reached offset 14")
	}
	if n := flush(t, owner); n != 15 {
		t.Fatalf("owner Flush = %d", n)
	}
	close(sb.release) // the zombie's upload lands
	if err := <-zombieDone; !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie Flush: %v, want ErrFenced", err)
	}
	if got := strings.Join(tableRows(t, d), "\n"); got != twoHoursTable {
		t.Fatalf("table:\n%s\nwant:\n%s", got, twoHoursTable)
	}
	if p := progress(t, d); p.Next != 15 || p.Replay != nil {
		t.Fatalf("progress %+v", p)
	}
}
