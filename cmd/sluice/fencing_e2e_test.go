package main

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestStalledWorkerWakesAsZombie: a worker freezes (SIGSTOP) in the middle
// of a flush, after recording it as pending and before uploading its files;
// its session expires and the other worker takes its partitions over and
// writes the same records. Then the frozen worker wakes (SIGCONT) and
// finishes its upload, late: its progress write is fenced, and its file is
// in no manifest, so the table holds every record once. The late file is
// garbage, deleted by the next collection.
func TestStalledWorkerWakesAsZombie(t *testing.T) {
	data := t.TempDir()
	s := e2e.Up(t, data, "--compact-interval", "3s", "--query-timeout", "20s", "--retire-grace", "25s")
	createCrashPipeline(t, s)
	z := e2e.Serve(t, t.TempDir(), []string{"SLUICE_FAILPOINT=sink.after-pending:1:stop"},
		append(s.KafkaFlags(), "--roles", "worker", "--storage", filepath.Join(data, "objects"),
			"--worker-id", "zombie", "--session-timeout", "6s")...)
	waitSplit(t, s, "crash")

	sendCrashRecords(t, s, 0, 10_000)
	e2e.WaitFor(t, time.Minute, "the second worker to freeze in its first flush", func() error {
		if !z.Stopped() {
			return errNotYet
		}
		return nil
	})
	// Its session expires; `sluice up` takes every partition and writes
	// all the records, those the frozen worker was flushing included.
	e2e.WaitFor(t, 2*time.Minute, "the first worker to own every partition", func() error {
		for _, p := range pipelineStatus(t, s, "crash").Partitions {
			if p.Worker != "sluice-up" || p.State != "running" {
				return errNotYet
			}
		}
		return nil
	})
	s.WaitCount("select count(*) from crash", 10_000, 2*time.Minute)

	z.Signal(syscall.SIGCONT) // the zombie wakes and uploads its file
	e2e.WaitFor(t, time.Minute, "the zombie to be fenced", func() error {
		if !strings.Contains(z.Log(), "fenced") {
			return errNotYet
		}
		return nil
	})
	if strings.Contains(z.Log(), "context canceled") {
		t.Log("the zombie's upload was cancelled before it landed; the table is checked all the same")
	}
	sendCrashRecords(t, s, 10_000, 2_000) // both workers again, after a rebalance
	s.WaitCount("select count(*) from crash", 12_000, 2*time.Minute)
	if n, err := s.Count("select count(distinct attrs->>'id') from crash"); err != nil || n != 12_000 {
		t.Fatalf("distinct ids: %d, %v", n, err)
	}
	// The directory may hold the late file until garbage collection, and
	// compacted files for --retire-grace after each merge; the table never
	// shows either, and collection removes them. Merges go on for a few
	// rounds after the last records, each retiring its inputs 25 s later:
	// on a loaded machine that takes minutes.
	glob := filepath.Join(data, "objects", "tables", "crash") + "/**/*.parquet"
	e2e.WaitFor(t, 4*time.Minute, "the directory to hold only the table's rows", func() error {
		n, err := s.Count("select count(*) from read_parquet('" + glob + "')")
		if err != nil {
			return err
		}
		if n != 12_000 {
			return errNotYet
		}
		return nil
	})
}

// errNotYet is what a WaitFor condition returns while it does not hold.
var errNotYet = errors.New("not yet")
