package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestServeWorkersScaleOut adds a second worker (`sluice serve --roles
// worker`) to the pipeline of a running `sluice up` (whose embedded broker
// and storage it shares): the partitions are split between the two, and when
// the second worker is killed mid-flow its partitions go back to the first.
// Every record lands once.
func TestServeWorkersScaleOut(t *testing.T) {
	data := t.TempDir()
	s := e2e.Up(t, data)
	createCrashPipeline(t, s)
	w := e2e.Serve(t, t.TempDir(), nil, append(s.KafkaFlags(), "--roles", "worker",
		"--storage", filepath.Join(data, "objects"), "--worker-id", "w2", "--session-timeout", "8s")...)
	waitSplit(t, s, "crash")
	sendCrashRecords(t, s, 0, 10_000)
	s.WaitCount("select count(*) from crash", 10_000, 60*time.Second)

	// The second worker dies (SIGKILL) with records in flight.
	sendCrashRecords(t, s, 10_000, 10_000)
	w.Kill()
	s.WaitCount("select count(*) from crash", 20_000, 2*time.Minute)
	if n, err := s.Count("select count(distinct (_partition, _offset)) from crash"); err != nil || n != 20_000 {
		t.Fatalf("distinct positions: %d, %v", n, err)
	}
}

// waitSplit waits until the first worker (s, `sluice up`) runs some but
// not all of pipeline's partitions: the others run on another worker.
func waitSplit(t *testing.T, s *e2e.Server, pipeline string) {
	t.Helper()
	e2e.WaitFor(t, 60*time.Second, "the partitions to be split between two workers", func() error {
		st := pipelineStatus(t, s, pipeline)
		mine := 0
		for _, p := range st.Partitions {
			if p.State == "running" && p.Worker == "sluice-up" {
				mine++
			}
		}
		if mine == 0 || mine == len(st.Partitions) {
			return fmt.Errorf("the first worker runs %d of %d partitions", mine, len(st.Partitions))
		}
		return nil
	})
}

type partitionStatus struct {
	Partition int32  `json:"partition"`
	State     string `json:"state"`
	Worker    string `json:"worker"`
	Committed int64  `json:"committed"`
	LastError string `json:"last_error"`
}

// pipelineStatus reads GET /v1/pipelines/{name}/status.
func pipelineStatus(t *testing.T, s *e2e.Server, pipeline string) (st struct {
	Partitions []partitionStatus `json:"partitions"`
}) {
	t.Helper()
	if code, body := s.Get("/v1/pipelines/"+pipeline+"/status", &st); code != 200 {
		t.Fatalf("status of %s: %d %s", pipeline, code, body)
	}
	return st
}
