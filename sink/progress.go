package sink

import (
	"context"
	"encoding/json"
	"errors"
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
	Pending *Pending `json:"pending,omitempty"`
	// Epoch counts the writers that claimed the partition; each writer
	// checks it still holds the newest before it writes (fencing).
	Epoch int64 `json:"epoch"`
	// State is the caller's state as of Next (see Writer.SetState); absent
	// for callers that keep none.
	State json.RawMessage `json:"state,omitempty"`
	// Replay, when set, is a flush a claim rolled back (see claimOnce) that
	// has not been written again yet.
	Replay  *Replay   `json:"replay,omitempty"`
	Updated time.Time `json:"updated"`
}

// Replay is a rolled-back flush that the partition's next flush must
// repeat exactly: offsets Next..Last, no more and no fewer, so that its
// files get the rolled-back files' names. A fenced writer may still be
// uploading those files (its epoch check passed just before the claim); a
// late upload then replaces a file of the repeat with the same rows instead
// of adding a file of its own that would repeat them.
type Replay struct {
	First int64 `json:"first"` // the first offset the rolled-back flush wrote; -1: unknown
	Last  int64 `json:"last"`
}

// rolledBack is the Replay of pending flush p.
func rolledBack(p *Pending) *Replay {
	r := &Replay{First: -1, Last: p.Next - 1}
	if len(p.Files) > 0 {
		if f, ok := parseFileKey(p.Files[0]); ok {
			r.First = f.first
		}
	}
	return r
}

// Pending describes a flush in progress: the files it writes and the Next it
// moves to once all of them are written.
type Pending struct {
	Next  int64           `json:"next"`
	Files []string        `json:"files"`
	State json.RawMessage `json:"state,omitempty"` // the caller's state as of Next
}

// progressKey is where the progress of (pipeline, stream, partition) lives.
func progressKey(pipeline, stream string, partition int32) string {
	return fmt.Sprintf("_sluice/progress/%s/%s/%d.json", pipeline, stream, partition)
}

// LoadProgress reads the progress of (pipeline, stream, partition); nil if
// the partition was never written.
func LoadProgress(ctx context.Context, b objstore.Bucket, pipeline, stream string, partition int32) (*Progress, error) {
	p, _, err := loadProgress(ctx, b, progressKey(pipeline, stream, partition))
	return p, err
}

// loadProgress reads a progress object and, from a Versioned store, its
// version for a conditional save.
func loadProgress(ctx context.Context, b objstore.Bucket, key string) (*Progress, string, error) {
	var data []byte
	var version string
	var err error
	if vb, ok := b.(objstore.Versioned); ok {
		data, version, err = vb.GetVersion(ctx, key)
	} else {
		data, err = b.Get(ctx, key)
	}
	if objstore.IsNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("cannot read progress %q: %w", key, err)
	}
	var p Progress
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, "", fmt.Errorf("cannot decode progress %q (the object is corrupt; delete it to resume from the Kafka committed offset): %w: %w", key, ErrCorruptProgress, err)
	}
	return &p, version, nil
}

// saveProgress writes a progress object. On a Versioned store the write is
// conditional on version (the one this writer read or wrote last; "": the
// object must not exist), so a writer that lost the partition to another
// cannot overwrite the other's progress: it gets ErrFenced. It returns the
// new version.
func saveProgress(ctx context.Context, b objstore.Bucket, key string, p Progress, version string) (string, error) {
	p.Updated = time.Now().UTC()
	data, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("BUG: cannot encode progress: %w", err)
	}
	if vb, ok := b.(objstore.Versioned); ok {
		v, err := vb.PutIfVersion(ctx, key, data, version)
		if objstore.IsConflict(err) {
			return "", fmt.Errorf("cannot save progress %q at epoch %d: %w: %w", key, p.Epoch, ErrFenced, err)
		}
		if err != nil {
			return "", fmt.Errorf("cannot save progress %q: %w", key, err)
		}
		return v, nil
	}
	if err := b.Put(ctx, key, data); err != nil {
		return "", fmt.Errorf("cannot save progress %q: %w", key, err)
	}
	return "", nil
}

// ErrFenced is returned (wrapped) by Flush when another writer has claimed
// the partition since this one opened it: this writer is a zombie (say, a
// worker whose group session expired while it was stalled) and must stop
// without writing or committing anything more.
var ErrFenced = errors.New("fenced: another worker has claimed this partition")

// ErrCorruptProgress marks a progress object that cannot be decoded: no retry
// helps, an operator must remove it.
var ErrCorruptProgress = errors.New("corrupt progress object")

// claimProgress finishes or undoes an interrupted flush, then claims the
// partition for a new writer by bumping its epoch. It returns the progress
// the writer resumes from (Next -1: nothing written yet), with the writer's
// epoch and the caller's state as of Next.
//
// A pending flush whose files all exist is rolled forward: the rows are in
// the table, so Next moves past them. Otherwise it is rolled back: the files
// that did get written are deleted, and the records are read again from Next
// (they may be cut into different files this time, so the partial files must
// go, or their rows would be counted twice).
//
// The claim is a conditional write on the version read, so two writers
// claiming at once cannot both win; the loser reads again and claims after
// the winner (it is the one Kafka assigned the partition to last).
func claimProgress(ctx context.Context, b objstore.Bucket, key string) (claimed Progress, version string, err error) {
	for attempt := 1; ; attempt++ {
		claimed, version, err = claimOnce(ctx, b, key)
		if !errors.Is(err, ErrFenced) || attempt == 5 {
			return claimed, version, err
		}
	}
}

func claimOnce(ctx context.Context, b objstore.Bucket, key string) (Progress, string, error) {
	p, version, err := loadProgress(ctx, b, key)
	if err != nil {
		return Progress{}, "", err
	}
	claimed := Progress{Next: -1}
	if p != nil {
		claimed = Progress{Next: p.Next, Epoch: p.Epoch, State: p.State, Replay: p.Replay}
		if p.Pending != nil {
			if claimed.Next, err = resolvePending(ctx, b, key, p); err != nil {
				return Progress{}, "", err
			}
			if claimed.Next == p.Pending.Next {
				claimed.State = p.Pending.State
			} else {
				claimed.Replay = rolledBack(p.Pending)
			}
		}
		if claimed.Replay != nil && claimed.Replay.Last < claimed.Next {
			claimed.Replay = nil
		}
	}
	claimed.Epoch++
	version, err = saveProgress(ctx, b, key, claimed, version)
	if err != nil {
		return Progress{}, "", err
	}
	return claimed, version, nil
}

// resolvePending rolls a pending flush forward (returning Pending.Next) or
// back (returning Next).
func resolvePending(ctx context.Context, b objstore.Bucket, key string, p *Progress) (int64, error) {
	complete := true
	for _, f := range p.Pending.Files {
		if _, err := b.Stat(ctx, f); objstore.IsNotFound(err) {
			complete = false
		} else if err != nil {
			return -1, fmt.Errorf("cannot check pending file %q of progress %q: %w", f, key, err)
		}
	}
	if complete {
		return p.Pending.Next, nil
	}
	for _, f := range p.Pending.Files {
		if err := b.Delete(ctx, f); err != nil {
			return -1, fmt.Errorf("cannot roll back pending file %q of progress %q: %w", f, key, err)
		}
	}
	return p.Next, nil
}

// checkEpoch fails with ErrFenced unless the partition's progress still
// carries epoch. It narrows, but does not close, the window in which a zombie
// could write: between this read and the write that follows, a new owner may
// claim the partition. Closing it needs conditional writes (S3 If-Match),
// which is the next step (see DESIGN.md).
func checkEpoch(ctx context.Context, b objstore.Bucket, key string, epoch int64) error {
	p, _, err := loadProgress(ctx, b, key)
	if err != nil {
		return err
	}
	if p == nil || p.Epoch != epoch {
		found := int64(0)
		if p != nil {
			found = p.Epoch
		}
		return fmt.Errorf("cannot write progress %q at epoch %d (found epoch %d): %w", key, epoch, found, ErrFenced)
	}
	return nil
}
