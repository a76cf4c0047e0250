package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// Progress is the durable record of how far one stream partition has been
// written into a pipeline's table. It is the source of truth for where a
// worker resumes; the Kafka consumer-group offset follows it (for lag
// monitoring and tools) and is never ahead of it.
type Progress struct {
	// Next is the first offset not yet in the table.
	Next int64 `json:"next"`
	// Pending, when set, is a flush that was started and may not have
	// finished: its files may be partly written.
	Pending *Pending  `json:"pending,omitempty"`
	Updated time.Time `json:"updated"`
}

// Pending describes a flush in progress: the files it writes and the Next it
// moves to once all of them are written.
type Pending struct {
	Next  int64    `json:"next"`
	Files []string `json:"files"`
}

// progressKey is where the progress of (pipeline, stream, partition) lives.
func progressKey(pipeline, stream string, partition int32) string {
	return fmt.Sprintf("_sluice/progress/%s/%s/%d.json", pipeline, stream, partition)
}

// LoadProgress reads the progress of (pipeline, stream, partition); nil if
// the partition was never written.
func LoadProgress(ctx context.Context, b objstore.Bucket, pipeline, stream string, partition int32) (*Progress, error) {
	return loadProgress(ctx, b, progressKey(pipeline, stream, partition))
}

func loadProgress(ctx context.Context, b objstore.Bucket, key string) (*Progress, error) {
	data, err := b.Get(ctx, key)
	if objstore.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read progress %q: %w", key, err)
	}
	var p Progress
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("cannot decode progress %q (the object is corrupt; delete it to resume from the Kafka committed offset): %w", key, err)
	}
	return &p, nil
}

func saveProgress(ctx context.Context, b objstore.Bucket, key string, p Progress) error {
	p.Updated = time.Now().UTC()
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("BUG: cannot encode progress: %w", err)
	}
	if err := b.Put(ctx, key, data); err != nil {
		return fmt.Errorf("cannot save progress %q: %w", key, err)
	}
	return nil
}

// recover finishes or undoes an interrupted flush and returns the offset to
// resume from (-1: nothing written yet).
//
// A pending flush whose files all exist is rolled forward: the rows are in
// the table, so Next moves past them. Otherwise it is rolled back: the files
// that did get written are deleted, and the records are read again from Next
// (they may be cut into different files this time, so the partial files must
// go, or their rows would be counted twice).
func recoverProgress(ctx context.Context, b objstore.Bucket, key string) (int64, error) {
	p, err := loadProgress(ctx, b, key)
	if err != nil || p == nil {
		return -1, err
	}
	if p.Pending == nil {
		return p.Next, nil
	}
	complete := true
	for _, f := range p.Pending.Files {
		if _, err := b.Stat(ctx, f); objstore.IsNotFound(err) {
			complete = false
		} else if err != nil {
			return -1, fmt.Errorf("cannot check pending file %q of progress %q: %w", f, key, err)
		}
	}
	next := p.Next
	if complete {
		next = p.Pending.Next
	} else {
		for _, f := range p.Pending.Files {
			if err := b.Delete(ctx, f); err != nil {
				return -1, fmt.Errorf("cannot roll back pending file %q of progress %q: %w", f, key, err)
			}
		}
	}
	if err := saveProgress(ctx, b, key, Progress{Next: next}); err != nil {
		return -1, err
	}
	return next, nil
}
