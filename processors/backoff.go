package processors

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// Backoff between retries of a failed batch: exponential from BackoffMin,
// capped at BackoffMax, with ±25% jitter so that partitions failing together
// do not retry in lockstep.
const (
	BackoffMin = 200 * time.Millisecond
	BackoffMax = 30 * time.Second
)

func backoff(attempt int) time.Duration {
	d := BackoffMin
	for i := 1; i < attempt && d < BackoffMax; i++ {
		d *= 2
	}
	d = min(d, BackoffMax)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
