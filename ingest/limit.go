package ingest

import (
	"context"
	"sync"
	"time"
)

// DefaultMaxInFlight is the default bound of the bytes that requests being
// served may hold (--ingest-memory).
const DefaultMaxInFlight = 256 << 20

// admitWait is how long a request waits for room before it is answered 503
// with Retry-After.
const admitWait = 2 * time.Second

// reservation is what one request may hold at its peak, for a body of n
// bytes: the body, the records' compacted copies (at most as big), and
// their per-record answers (bounded by MaxRecords).
func reservation(n int64) int64 { return 2*n + MaxRecords*64 }

// limiter bounds the bytes all requests hold together. A request reserves
// its peak before it reads its body, and waits (at most admitWait) while
// the others hold too much; one alone may always go, however big, so a
// limit below one request's reservation never locks ingest out.
type limiter struct {
	mu     sync.Mutex
	limit  int64
	used   int64
	wakeup chan struct{} // closed and replaced whenever bytes are released
}

func newLimiter(limit int64) *limiter {
	return &limiter{limit: limit, wakeup: make(chan struct{})}
}

// acquire reserves n bytes; false if ctx ended or admitWait passed first.
func (l *limiter) acquire(ctx context.Context, n int64) bool {
	timer := time.NewTimer(admitWait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.used == 0 || l.used+n <= l.limit {
			l.used += n
			l.mu.Unlock()
			return true
		}
		wake := l.wakeup
		l.mu.Unlock()
		select {
		case <-wake:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (l *limiter) release(n int64) {
	l.mu.Lock()
	l.used -= n
	close(l.wakeup)
	l.wakeup = make(chan struct{})
	l.mu.Unlock()
}
