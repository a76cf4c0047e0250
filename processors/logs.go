package processors

import (
	"bytes"
	"sync"
	"time"
)

// LogEntry is one line a function wrote to stderr, with where it came from.
type LogEntry struct {
	Time        time.Time `json:"time"`
	Function    string    `json:"function"`
	Version     string    `json:"version"`
	Partition   int32     `json:"partition"`
	FirstOffset int64     `json:"first_offset"`
	LastOffset  int64     `json:"last_offset"`
	Line        string    `json:"line"`
	Text        []byte    `json:"-"` // a batch's whole log, split into lines by Add
}

// LogStore keeps the most recent log lines of each function in memory
// (LogLinesPerFunction of them), for `sluice fn logs`. They are this
// process's only: lines are lost on restart, and with several workers each
// keeps its own.
type LogStore struct {
	mu    sync.Mutex
	lines map[string][]LogEntry // ring per function
}

// LogLinesPerFunction bounds the lines kept per function.
const LogLinesPerFunction = 10_000

// Add splits e.Text into lines and keeps them.
func (s *LogStore) Add(e LogEntry) {
	if s == nil || len(e.Text) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = map[string][]LogEntry{}
	}
	e.Time = time.Now().UTC()
	ring := s.lines[e.Function]
	for _, line := range bytes.Split(bytes.TrimRight(e.Text, "\n"), []byte("\n")) {
		le := e
		le.Text, le.Line = nil, string(line)
		ring = append(ring, le)
	}
	if over := len(ring) - LogLinesPerFunction; over > 0 {
		ring = append([]LogEntry(nil), ring[over:]...)
	}
	s.lines[e.Function] = ring
}

// Tail returns the last n lines of function, oldest first.
func (s *LogStore) Tail(function string, n int) []LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	ring := s.lines[function]
	return append([]LogEntry{}, ring[max(0, len(ring)-n):]...)
}
