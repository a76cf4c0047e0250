package sink

import (
	"errors"
	"strings"
	"testing"
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
