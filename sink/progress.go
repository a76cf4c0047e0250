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
// written into a pipeline's table, and of the files that hold it (Manifest).
// It is the source of truth for where a worker resumes and for what a query
// reads; the Kafka consumer-group offset follows it (for lag monitoring and
// tools) and is never ahead of it. Only the partition's owner writes it, each
// write conditional on the version it read or wrote last (fencing).
type Progress struct {
	// Next is the first offset not yet in the table.
	Next int64 `json:"next"`
	// Pending, when set, is a change of the manifest that was started and
	// may not have finished: its files may be partly written.
	Pending *Pending `json:"pending,omitempty"`
	// Epoch counts the writers that claimed the partition; each writer
	// writes only over the version it last saw (fencing).
	Epoch int64 `json:"epoch"`
	// State is the caller's state as of Next (see Writer.SetState); absent
	// for callers that keep none.
	State json.RawMessage `json:"state,omitempty"`
	// Manifest lists the committed files. nil in an object written by a
	// release before manifests: the next claim adopts the files once.
	Manifest *Manifest `json:"manifest,omitempty"`
	// Status is the owner's account of the partition (the caller's JSON:
	// state, attempts, last error), so any process can show it.
	Status  json.RawMessage `json:"status,omitempty"`
	Updated time.Time       `json:"updated"`
}

// Pending describes a manifest change in progress: a flush (Entries are
// added and Next moves) or a compaction (Entries replace the files named by
// Replaces; Next stays). Files are the keys being written.
type Pending struct {
	Next     int64           `json:"next"`
	Files    []string        `json:"files"`
	Entries  []FileEntry     `json:"entries,omitempty"`
	Replaces []string        `json:"replaces,omitempty"`
	State    json.RawMessage `json:"state,omitempty"` // the caller's state as of Next
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
	p, err := DecodeProgress(key, data)
	if err != nil {
		return nil, "", err
	}
	return p, version, nil
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

// claimProgress finishes or undoes an interrupted manifest change, adopts
// the files of a partition written before manifests, then claims the
// partition for a new writer by bumping its epoch. It returns the progress
// the writer resumes from (Next -1: nothing written yet), with the writer's
// epoch and the caller's state as of Next.
//
// A pending change whose files all exist is rolled forward: its entries go
// into the manifest (a flush also moves Next past its records). Otherwise
// it is rolled back: the files that did get written are deleted (a zombie's
// upload that lands later is in no manifest, so never visible, and garbage),
// and a flush's records are read again from Next.
//
// The claim is a conditional write on the version read, so two writers
// claiming at once cannot both win; the loser reads again and claims after
// the winner (it is the one Kafka assigned the partition to last).
func claimProgress(ctx context.Context, b objstore.Bucket, key string, cfg Config) (claimed Progress, version string, err error) {
	for attempt := 1; ; attempt++ {
		claimed, version, err = claimOnce(ctx, b, key, cfg)
		if !errors.Is(err, ErrFenced) || attempt == 5 {
			return claimed, version, err
		}
	}
}

func claimOnce(ctx context.Context, b objstore.Bucket, key string, cfg Config) (Progress, string, error) {
	p, version, err := loadProgress(ctx, b, key)
	if err != nil {
		return Progress{}, "", err
	}
	claimed := Progress{Next: -1, Manifest: &Manifest{Table: cfg.Table, Files: []FileEntry{}}}
	if p != nil {
		claimed = Progress{Next: p.Next, Epoch: p.Epoch, State: p.State, Manifest: p.Manifest.clone(), Status: p.Status}
		if p.Pending != nil {
			forward, err := resolvePending(ctx, b, key, p)
			if err != nil {
				return Progress{}, "", err
			}
			if forward {
				claimed.Next, claimed.State = p.Pending.Next, p.Pending.State
				if claimed.Manifest != nil {
					claimed.Manifest.replace(p.Pending.Replaces, p.Pending.Entries, time.Now().UTC())
				}
			}
		}
		if claimed.Manifest == nil {
			if claimed.Manifest, err = adopt(ctx, b, cfg.Table, cfg.Stream, cfg.Partition, claimed.Next); err != nil {
				return Progress{}, "", err
			}
		}
	}
	claimed.Epoch++
	version, err = saveProgress(ctx, b, key, claimed, version)
	if err != nil {
		return Progress{}, "", err
	}
	return claimed, version, nil
}

// resolvePending rolls a pending change forward (true: its files are all
// there) or back (false: the files it wrote are deleted).
func resolvePending(ctx context.Context, b objstore.Bucket, key string, p *Progress) (bool, error) {
	complete := true
	for _, f := range p.Pending.Files {
		if _, err := b.Stat(ctx, f); objstore.IsNotFound(err) {
			complete = false
		} else if err != nil {
			return false, fmt.Errorf("cannot check pending file %q of progress %q: %w", f, key, err)
		}
	}
	if complete {
		return true, nil
	}
	for _, f := range p.Pending.Files {
		if err := b.Delete(ctx, f); err != nil {
			return false, fmt.Errorf("cannot roll back pending file %q of progress %q: %w", f, key, err)
		}
	}
	return false, nil
}
