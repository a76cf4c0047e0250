package query

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// Mirror keeps a local copy of the table files of a bucket that DuckDB cannot
// read in place (S3: the DuckDB build here has no httpfs). Before a query,
// Sync lists the table's objects, downloads the ones not yet copied and
// removes copies whose object is gone (say, replaced by compaction). Table
// files are immutable once written, so a copy never goes stale; a download
// is written to a temporary name and renamed, so DuckDB never reads a partial
// file (and the view's glob skips names starting with ".").
//
// Only the files Visible keeps are downloaded (files superseded by
// compaction are not), FetchParallel at a time. Temporary files a crash left
// behind are removed at the next Sync.
//
// Trade-off: every query lists the table's objects, and the first query after
// a flush downloads the new files, so the copy costs the table's size in
// local disk. Pruning the download by the query's partition predicates and a
// size-bounded cache are the next step (see DESIGN.md).
type Mirror struct {
	Bucket objstore.Bucket
	Dir    string // the local root; table t's files go under Dir/tables/t/
	// Visible, if set, picks the keys a query reads from a table's listing
	// (sink.Visible); the others are not downloaded.
	Visible func(keys []string) []string
	// Grace is how long a copy is kept after its object is gone (0: removed
	// at once): a query that listed the copy just before may still be
	// reading it. Set it to the longest a query runs.
	Grace time.Duration

	gone map[string]time.Time // local copies whose objects are gone, since when

	mu sync.Mutex // one Sync at a time: concurrent queries share the work
}

// TableDir is where the copies of table's files are.
func (m *Mirror) TableDir(table string) string {
	return filepath.Join(m.Dir, "tables", table)
}

// Sync brings the local copy of table up to date with the bucket.
func (m *Mirror) Sync(ctx context.Context, table string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := "tables/" + table + "/"
	want := map[string]bool{}
	var keys []string
	err := m.Bucket.List(ctx, prefix, func(key string) error {
		if strings.HasSuffix(key, ".parquet") {
			want[key] = true
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot mirror table %q: %w", table, err)
	}
	if m.Visible != nil {
		keys = m.Visible(keys)
	}
	if err := m.fetchAll(ctx, keys); err != nil {
		return fmt.Errorf("cannot mirror table %q: %w", table, err)
	}
	return m.prune(prefix, want)
}

// FetchParallel is how many files Sync downloads at once.
const FetchParallel = 8

// fetchAll fetches keys, FetchParallel at a time; it returns the first
// error after every started download has ended.
func (m *Mirror) fetchAll(ctx context.Context, keys []string) error {
	work := make(chan string)
	errs := make(chan error, FetchParallel)
	for range min(FetchParallel, len(keys)) {
		go func() {
			var first error
			for key := range work {
				if first == nil {
					first = m.fetch(ctx, key)
				}
			}
			errs <- first
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	var first error
	for range min(FetchParallel, len(keys)) {
		if err := <-errs; first == nil {
			first = err
		}
	}
	return first
}

// fetch copies key unless a copy exists.
func (m *Mirror) fetch(ctx context.Context, key string) error {
	local := filepath.Join(m.Dir, filepath.FromSlash(key))
	if _, err := os.Stat(local); err == nil {
		return nil
	}
	data, err := m.Bucket.Get(ctx, key)
	if objstore.IsNotFound(err) {
		return nil // removed since the listing
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), ".fetch-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), local)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot copy object %q to %s: %w", key, local, werr)
	}
	return nil
}

// Current drops from paths (local copies, as the catalog lists them) the
// copies kept only for Grace: their objects are gone, so a new query must
// not read them.
func (m *Mirror) Current(paths []string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := paths[:0:0]
	for _, p := range paths {
		rel, err := filepath.Rel(m.Dir, p)
		if _, gone := m.gone[filepath.ToSlash(rel)]; err == nil && gone {
			continue
		}
		out = append(out, p)
	}
	return out
}

// prune removes local copies whose objects have not been listed for Grace,
// and temporary files of downloads (none is running: Sync holds the lock).
func (m *Mirror) prune(prefix string, want map[string]bool) error {
	if m.gone == nil {
		m.gone = map[string]time.Time{}
	}
	now := time.Now()
	root := filepath.Join(m.Dir, filepath.FromSlash(prefix))
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(m.Dir, p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".fetch-") {
			return os.Remove(p)
		}
		key := filepath.ToSlash(rel)
		if want[key] || strings.HasPrefix(d.Name(), ".") {
			delete(m.gone, key)
			return nil
		}
		since, ok := m.gone[key]
		if !ok {
			m.gone[key], since = now, now
		}
		if now.Sub(since) >= m.Grace {
			delete(m.gone, key)
			return os.Remove(p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
