package sink

import "sync/atomic"

// Budget bounds the bytes that all the writers sharing it hold in memory
// (counted as the size of the input records they buffer). When the total
// passes Limit, every writer reports itself due at its next check, so buffers
// are written early, as smaller files, instead of growing without bound. A
// writer checks after each batch and on a clock tick, so the peak is about
// Limit plus one batch per partition plus the encoder's working memory
// (see BenchmarkMemoryBudget for measured numbers).
type Budget struct {
	Limit int64
	used  atomic.Int64
}

// Used is the number of bytes currently buffered.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

func (b *Budget) add(n int64) {
	if b != nil {
		b.used.Add(n)
	}
}

func (b *Budget) over() bool { return b != nil && b.Limit > 0 && b.used.Load() >= b.Limit }
