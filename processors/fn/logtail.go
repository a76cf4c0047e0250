package fn

import "sync"

// tail keeps the last LogTail bytes written to it. Safe for concurrent use.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > LogTail {
		p = p[len(p)-LogTail:]
	}
	t.mu.Lock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*LogTail {
		t.b = append(t.b[:0], t.b[len(t.b)-LogTail:]...)
	}
	t.mu.Unlock()
	return n, nil
}

// take returns a copy of the kept bytes (nil if none) and empties the tail.
func (t *tail) take() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > LogTail {
		b = b[len(b)-LogTail:]
	}
	var out []byte
	if len(b) > 0 {
		out = append([]byte(nil), b...)
	}
	t.b = t.b[:0]
	return out
}

// limitWriter collects up to max bytes; writes past that fail.
type limitWriter struct {
	b        []byte
	max      int
	overflow bool
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.max {
		w.overflow = true
		return 0, errOutputTooLarge
	}
	w.b = append(w.b, p...)
	return len(p), nil
}
