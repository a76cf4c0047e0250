package auth

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Limits is a key's usage plan: what it may use per unit of time, on each
// process (zero: no limit). A request over a limit is refused whole with
// 429 and Retry-After, before anything of it is written or run.
type Limits struct {
	IngestRequestsPerSec float64 `json:"ingest_requests_per_sec,omitempty"`
	IngestBytesPerSec    int64   `json:"ingest_bytes_per_sec,omitempty"`
	QueriesPerMinute     float64 `json:"queries_per_minute,omitempty"`
}

func (l Limits) validate() error {
	if l.IngestRequestsPerSec < 0 || l.IngestBytesPerSec < 0 || l.QueriesPerMinute < 0 ||
		math.IsNaN(l.IngestRequestsPerSec) || math.IsNaN(l.QueriesPerMinute) {
		return fmt.Errorf("%w: limits must not be negative", ErrInvalid)
	}
	return nil
}

// RateLimited is the error of a request over its key's plan.
type RateLimited struct {
	KeyID      string
	What       string        // "ingest requests", "ingest bytes", "queries"
	RetryAfter time.Duration // when the request would fit
}

// RetryAfterSeconds is the Retry-After header's value (at least 1).
func (e *RateLimited) RetryAfterSeconds() int { return max(int(math.Ceil(e.RetryAfter.Seconds())), 1) }

func (e *RateLimited) Error() string {
	return fmt.Sprintf("key %s is over its usage plan's %s: retry in %s (an admin can raise the key's limits)", e.KeyID, e.What, e.RetryAfter.Round(time.Millisecond))
}

// bucket is a token bucket holding at most a second's worth that may go
// into debt: a request goes when the bucket holds its cost, or, for one
// larger than a second's worth, when the bucket is full; it takes its whole
// cost, so the next ones wait until the debt is paid. The average rate is
// the limit.
type bucket struct {
	rate   float64 // tokens per second
	tokens float64 // at most rate (one second's worth)
	at     time.Time
}

// refill adds what the time since the last call earned, up to a second's
// worth.
func (b *bucket) refill(now time.Time) {
	b.tokens = math.Min(b.rate, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	b.at = now
}

func (b *bucket) take(now time.Time, cost float64) (wait time.Duration, ok bool) {
	b.refill(now)
	if need := math.Min(cost, b.rate); b.tokens < need {
		return time.Duration((need - b.tokens) / b.rate * float64(time.Second)), false
	}
	b.tokens -= cost
	return 0, true
}

// plan is one key's buckets on this process.
type plan struct {
	mu       sync.Mutex
	limits   Limits
	requests bucket
	bytes    bucket
	queries  bucket
}

func newPlan(l Limits, now time.Time) *plan {
	return &plan{limits: l,
		requests: bucket{rate: l.IngestRequestsPerSec, tokens: l.IngestRequestsPerSec, at: now},
		bytes:    bucket{rate: float64(l.IngestBytesPerSec), tokens: float64(l.IngestBytesPerSec), at: now},
		queries:  bucket{rate: l.QueriesPerMinute / 60, tokens: l.QueriesPerMinute / 60, at: now},
	}
}

// AllowIngest charges one ingest request of n bytes to p's plan.
func (p *Principal) AllowIngest(n int64) error {
	if p == nil || p.plan == nil {
		return nil
	}
	pl := p.plan
	pl.mu.Lock()
	defer pl.mu.Unlock()
	now := time.Now()
	if pl.limits.IngestRequestsPerSec > 0 {
		if wait, ok := pl.requests.take(now, 1); !ok {
			return &RateLimited{KeyID: p.KeyID, What: "ingest requests per second", RetryAfter: wait}
		}
	}
	if pl.limits.IngestBytesPerSec > 0 {
		if wait, ok := pl.bytes.take(now, float64(n)); !ok {
			if pl.limits.IngestRequestsPerSec > 0 {
				pl.requests.tokens++ // refused: the request costs nothing
			}
			return &RateLimited{KeyID: p.KeyID, What: "ingest bytes per second", RetryAfter: wait}
		}
	}
	return nil
}

// bytesFull reports whether the bytes bucket holds a second's worth.
func (pl *plan) bytesFull() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.bytes.refill(time.Now())
	return pl.bytes.tokens >= pl.bytes.rate
}

// chargeBytes takes n bytes of a streamed body; without debt allowed it
// fails once the bucket is empty.
func (pl *plan) chargeBytes(keyID string, n int64, debt bool) error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	b := &pl.bytes
	b.refill(time.Now())
	b.tokens -= float64(n)
	if b.tokens < 0 && !debt {
		return &RateLimited{KeyID: keyID, What: "ingest bytes per second", RetryAfter: time.Duration(-b.tokens / b.rate * float64(time.Second))}
	}
	return nil
}

// AllowQuery charges one query to p's plan.
func (p *Principal) AllowQuery() error {
	if p == nil || p.plan == nil || p.plan.limits.QueriesPerMinute == 0 {
		return nil
	}
	pl := p.plan
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if wait, ok := pl.queries.take(time.Now(), 1); !ok {
		return &RateLimited{KeyID: p.KeyID, What: "queries per minute", RetryAfter: wait}
	}
	return nil
}
