package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// Source is one stream partition that a pipeline writes into a table; a
// table's files are the union of its sources' manifests.
type Source struct {
	Pipeline  string
	Stream    string
	Partition int32
}

// ProgressKey is where a source's progress object (and manifest) lives.
func (s Source) ProgressKey() string { return progressKey(s.Pipeline, s.Stream, s.Partition) }

// DecodeProgress decodes a progress object read from ProgressKey.
func DecodeProgress(key string, data []byte) (*Progress, error) {
	var p Progress
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("cannot decode progress %q (the object is corrupt; delete it to resume from the Kafka committed offset): %w: %w", key, ErrCorruptProgress, err)
	}
	return &p, nil
}

// LegacyFiles lists the files a query reads of a source whose progress was
// written by a release before manifests and that no worker has claimed
// since (a claim adopts them): the visible files below next. It lists the
// table; it is only for the moments after an upgrade.
func LegacyFiles(ctx context.Context, b objstore.Bucket, table string, src Source, next int64) ([]FileEntry, error) {
	refs, err := legacyFiles(ctx, b, table, src.Stream, src.Partition, next)
	if err != nil {
		return nil, fmt.Errorf("cannot read the files of %s/%d: %w", src.Stream, src.Partition, err)
	}
	out := make([]FileEntry, 0, len(refs))
	for _, f := range refs {
		out = append(out, FileEntry{Key: f.key, First: f.first, Last: f.last, Part: hivePart(f.key), Size: -1})
	}
	return out, nil
}

// CollectGarbage deletes the files of table that no manifest lists: uploads
// of zombies that lost their partition, and leftovers of crashes. It lists
// the table first and reads the manifests after, so a file uploaded by a
// live writer (which records it as pending before the upload) is always
// seen as referenced. Only files of the given sources' stream partitions
// are considered, and none of a partition not adopted yet, so a process
// whose registry is stale (a pipeline it does not know yet) deletes nothing
// of it. Any process may run it, at any time, concurrently with others.
func CollectGarbage(ctx context.Context, b objstore.Bucket, table string, sources []Source, log *slog.Logger) (int, error) {
	byPart := map[Source][]string{}
	err := b.List(ctx, "tables/"+table+"/", func(key string) error {
		if f, ok := parseFileKey(key); ok {
			s := Source{Stream: f.stream, Partition: f.partition}
			byPart[s] = append(byPart[s], key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot list table %q to collect garbage: %w", table, err)
	}
	deleted := 0
	for _, src := range sources {
		keys := byPart[Source{Stream: src.Stream, Partition: src.Partition}]
		if len(keys) == 0 {
			continue
		}
		refs, ok, err := referenced(ctx, b, src)
		if err != nil {
			return deleted, err
		}
		if !ok {
			continue // not adopted yet: its files are not known to be garbage
		}
		for _, k := range keys {
			if refs[k] {
				continue
			}
			if err := b.Delete(ctx, k); err != nil {
				return deleted, fmt.Errorf("cannot delete unreferenced file %q: %w", k, err)
			}
			log.Info("deleted a table file no manifest lists", "table", table, "key", k)
			deleted++
		}
	}
	return deleted, nil
}

// referenced returns every key src's progress refers to: committed, retired
// and pending files. ok is false for a partition written before manifests
// and not adopted yet (nothing of it may be deleted).
func referenced(ctx context.Context, b objstore.Bucket, src Source) (map[string]bool, bool, error) {
	p, _, err := loadProgress(ctx, b, src.ProgressKey())
	if err != nil {
		return nil, false, err
	}
	refs := map[string]bool{}
	if p == nil {
		return refs, true, nil
	}
	if p.Manifest == nil {
		return nil, false, nil
	}
	files, err := p.Manifest.AllFiles(ctx, b.Get)
	if err != nil {
		return nil, false, err
	}
	for _, f := range files {
		refs[f.Key] = true
	}
	for _, r := range p.Manifest.Retired {
		refs[r.Key] = true
	}
	if p.Pending != nil {
		for _, k := range slices.Concat(p.Pending.Files, p.Pending.Replaces) {
			refs[k] = true
		}
	}
	return refs, true, nil
}
