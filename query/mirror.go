package query

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// Mirror is a bounded local cache of the objects of a bucket that DuckDB
// cannot read in place (S3: the DuckDB build here has no httpfs). Before a
// query, the catalog asks Fetch for exactly the keys the query reads (its
// manifest, after pruning); Fetch copies the missing ones to Dir/<key> and
// pins all of them until the query releases them.
//
// Why a copy is never stale: table files are immutable once written (a key
// never changes content, compaction writes new keys), so a copy is valid for
// as long as it exists and the cache needs no invalidation, only eviction.
// A key the manifest no longer lists is simply never asked for again and
// ages out of the cache.
//
// What is bounded: MaxBytes bounds the bytes of the files under Dir that the
// mirror made, that is complete copies plus downloads in progress. When
// MaxBytes > 0, Fetch learns the size of each missing object with
// Bucket.Stat (one HEAD request per missing file, FetchParallel at a time)
// before downloading anything, and reserves that size from the start of the
// download, evicting least recently used unpinned copies to make room
// first; so, with sizes as Stat reports them (and a key's size never
// changes), the bound holds at every instant, temporary files included.
// Paying a Stat per missing file buys refusing an over-budget query before
// it downloads anything, rather than after it filled the disk. The bound
// does not count files Open could not map to a key (not ours) nor directory
// entries; empty directories left by eviction are not removed (a
// concurrent download may be creating a file in them).
//
// Pinning: the copies running queries read are never evicted. If the pinned
// copies (of every running query, including the one asking) would exceed
// MaxBytes, the asking Fetch fails with a user error: the trade-off is that
// a query may fail while other big queries run, instead of waiting for them
// or overrunning the disk.
//
// Every Fetch that finds a copy makes it the most recently used (and sets
// its modification time, so that Open restores the order after a restart).
// A download is written to a temporary file named ".fetch-*" next to its
// target, fsynced and renamed, so DuckDB never reads a partial file and a
// crash leaves no torn copy, only a temporary file that Open removes.
//
// The index is guarded by one mutex; downloads run outside it, and
// concurrent Fetches of one key share one download.
type Mirror struct {
	Bucket objstore.Bucket
	Dir    string // local root; key k is copied to Dir/<k> (same relative layout)
	// MaxBytes bounds the local copies (--query-cache-size); 0: unbounded.
	// Set it before the first Open or Fetch.
	MaxBytes int64

	mu     sync.Mutex
	index  map[string]*mirrorEntry // copies and downloads in progress, by key
	lru    *list.List              // copies (of *mirrorEntry), most recently used first
	bytes  int64                   // size of the copies plus reserved size of downloads
	pinned int64                   // size of the entries with pins > 0

	hits, misses, evictions int64
}

// FetchParallel is how many files Fetch downloads (and stats) at once.
const FetchParallel = 8

// MirrorStats describes the cache, for logs and metrics.
type MirrorStats struct {
	Copies    int   // complete local copies
	Bytes     int64 // their size, plus the size of downloads in progress
	Pinned    int64 // bytes pinned by running queries
	Hits      int64 // keys a Fetch found copied
	Misses    int64 // keys a Fetch had to wait for (its own or a shared download)
	Evictions int64 // copies removed to respect MaxBytes
}

// mirrorEntry is one key of the index: a copy, or a download in progress.
type mirrorEntry struct {
	key    string
	size   int64         // Stat's size while downloading (0 if unbounded), then the copy's
	pins   int           // Fetches holding it
	copied bool          // the local file is complete
	elem   *list.Element // in Mirror.lru once copied
	done   chan struct{} // closed when the download ends; nil for copies Open found
	err    error         // why the download failed; set before done is closed
}

// mirrorFetch is what one Fetch holds: one pinned entry per distinct key.
type mirrorFetch struct {
	entries []*mirrorEntry
	own     []bool // this Fetch downloads entries[i]
	once    sync.Once
}

// Fetch makes local copies of keys (downloading the missing ones FetchParallel at a time,
// each download honouring ctx: a cancelled query stops its downloads), pins them so that
// no eviction removes them until release is called, and returns their local paths in the
// order of keys. Concurrent Fetches of the same key download it once. A key whose object is
// gone (objstore.IsNotFound) is an error naming the key (the manifest said it exists).
// release is safe to call more than once. On error nothing stays pinned.
//
// On error release is a no-op, never nil. A download that another Fetch
// started and abandoned (its query was cancelled) is taken over, so one
// query's cancellation does not fail another.
func (m *Mirror) Fetch(ctx context.Context, keys []string) (paths []string, release func(), err error) {
	for _, k := range keys {
		if !objstore.ValidKey(k) {
			return nil, func() {}, fmt.Errorf("BUG: cannot fetch object %q: not a valid object key", k)
		}
	}
	f, err := m.acquire(ctx, uniqueKeys(keys))
	if err != nil {
		return nil, func() {}, err
	}
	release = func() { m.release(f) }
	if err := m.complete(ctx, f); err != nil {
		release()
		return nil, func() {}, err
	}
	paths = make([]string, len(keys))
	for i, k := range keys {
		paths[i] = m.path(k)
	}
	return paths, release, nil
}

// Open prepares Dir: removes temporary downloads a crash left (".fetch-*"), and indexes the
// copies already there (size, mtime as last use) so the bound holds across restarts.
//
// Call it once, before the first Fetch; without it, copies from an earlier
// run are neither reused nor counted. Files whose path is not a valid object
// key are left alone and not counted. If the copies exceed MaxBytes (it was
// lowered), the least recently used are evicted.
func (m *Mirror) Open() error {
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("cannot create query cache directory %s (check --data): %w", m.Dir, err)
	}
	found, err := m.scan()
	if err != nil {
		return err
	}
	slices.SortFunc(found, func(a, b cachedFile) int { return a.used.Compare(b.used) })
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	for _, s := range found {
		if m.index[s.key] == nil {
			e := &mirrorEntry{key: s.key, size: s.size, copied: true}
			m.index[s.key] = e
			e.elem = m.lru.PushFront(e) // oldest first, so the newest ends in front
			m.bytes += s.size
		}
	}
	return m.evictLocked(0)
}

// Stats: copies, bytes, hits, misses, evictions (for logs/metrics).
func (m *Mirror) Stats() MirrorStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	copies := 0
	if m.lru != nil {
		copies = m.lru.Len()
	}
	return MirrorStats{Copies: copies, Bytes: m.bytes, Pinned: m.pinned,
		Hits: m.hits, Misses: m.misses, Evictions: m.evictions}
}

func (m *Mirror) path(key string) string { return filepath.Join(m.Dir, filepath.FromSlash(key)) }

func (m *Mirror) init() {
	if m.index == nil {
		m.index = map[string]*mirrorEntry{}
		m.lru = list.New()
	}
}

// uniqueKeys returns keys without repeats, in first-seen order.
func uniqueKeys(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// acquire pins the entries of keys, creating download entries for the
// missing ones. When bounded it stats the missing keys first (outside the
// lock), and loops if a copy was evicted meanwhile.
func (m *Mirror) acquire(ctx context.Context, keys []string) (*mirrorFetch, error) {
	sizes := map[string]int64{}
	for {
		m.mu.Lock()
		m.init()
		unsized := m.unsizedLocked(keys, sizes)
		if len(unsized) == 0 {
			f, err := m.pinAllLocked(keys, sizes)
			m.mu.Unlock()
			return f, err
		}
		m.mu.Unlock()
		if err := m.statAll(ctx, unsized, sizes); err != nil {
			return nil, err
		}
	}
}

// unsizedLocked lists the keys that are not indexed and whose size must be
// learnt first (only when bounded).
func (m *Mirror) unsizedLocked(keys []string, sizes map[string]int64) []string {
	if m.MaxBytes <= 0 {
		return nil
	}
	var out []string
	for _, k := range keys {
		if _, ok := sizes[k]; !ok && m.index[k] == nil {
			out = append(out, k)
		}
	}
	return out
}

// statAll records the sizes of keys, FetchParallel at a time.
func (m *Mirror) statAll(ctx context.Context, keys []string, sizes map[string]int64) error {
	got := make([]int64, len(keys))
	err := runLimited(ctx, len(keys), func(ctx context.Context, i int) error {
		n, err := m.Bucket.Stat(ctx, keys[i])
		if err != nil {
			return fetchError(keys[i], err)
		}
		got[i] = n
		return nil
	})
	if err != nil {
		return err
	}
	for i, k := range keys {
		sizes[k] = got[i]
	}
	return nil
}

// runLimited runs fn(0..n-1), FetchParallel at a time, and returns the first
// error; the first error cancels the context of the others, and every call
// has ended when runLimited returns.
func runLimited(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, FetchParallel)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// pinAllLocked checks the budget, then pins the indexed entries of keys and
// creates (pinned, owned) download entries for the others, after evicting
// to make room for their reserved sizes. It pins nothing on error.
func (m *Mirror) pinAllLocked(keys []string, sizes map[string]int64) (*mirrorFetch, error) {
	if err := m.checkBudgetLocked(keys, sizes); err != nil {
		return nil, err
	}
	f := &mirrorFetch{}
	var reserve int64
	for _, k := range keys {
		if e := m.index[k]; e != nil {
			m.pinLocked(e)
			f.add(e, false)
			m.touchLocked(e)
		} else {
			reserve += sizes[k]
		}
	}
	if err := m.evictLocked(reserve); err != nil {
		m.unpinAllLocked(f)
		return nil, err
	}
	for _, k := range keys {
		if m.index[k] == nil {
			f.add(m.newDownloadLocked(k, sizes[k]), true)
			m.misses++
		}
	}
	return f, nil
}

func (f *mirrorFetch) add(e *mirrorEntry, own bool) {
	f.entries = append(f.entries, e)
	f.own = append(f.own, own)
}

// checkBudgetLocked refuses a Fetch whose keys, with the copies other
// queries have pinned, would not fit in MaxBytes.
func (m *Mirror) checkBudgetLocked(keys []string, sizes map[string]int64) error {
	if m.MaxBytes <= 0 {
		return nil
	}
	var need, add int64 // this query's bytes; those not pinned yet
	for _, k := range keys {
		if e := m.index[k]; e != nil {
			need += e.size
			if e.pins == 0 {
				add += e.size
			}
		} else {
			need += sizes[k]
			add += sizes[k]
		}
	}
	if m.pinned+add <= m.MaxBytes {
		return nil
	}
	return budgetError(len(keys), need, m.pinned+add-need, m.MaxBytes)
}

// budgetError is the user error of a query whose files do not fit.
func budgetError(files int, need, others, limit int64) error {
	msg := fmt.Sprintf("cannot fetch the %d files the query reads: they take %s of local copies", files, byteSize(need))
	if others > 0 {
		msg += fmt.Sprintf(" and running queries hold %s more", byteSize(others))
	}
	msg += fmt.Sprintf(", over --query-cache-size %s: raise --query-cache-size or narrow the query, e.g. with a time range", byteSize(limit))
	if others > 0 && need <= limit {
		msg += ", or retry when fewer queries run"
	}
	return &userError{msg: msg}
}

// byteSize is n bytes for a person: "1.5 MiB (1572864 bytes)".
func byteSize(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1<<10 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, u := float64(n)/(1<<10), 0
	for v >= 1<<10 && u < len(units)-1 {
		v, u = v/(1<<10), u+1
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", v, units[u], n)
}

// newDownloadLocked indexes a pinned download entry for key, reserving size.
func (m *Mirror) newDownloadLocked(key string, size int64) *mirrorEntry {
	e := &mirrorEntry{key: key, size: size, done: make(chan struct{})}
	m.index[key] = e
	m.bytes += size
	m.pinLocked(e)
	return e
}

func (m *Mirror) pinLocked(e *mirrorEntry) {
	if e.pins == 0 {
		m.pinned += e.size
	}
	e.pins++
}

func (m *Mirror) unpinLocked(e *mirrorEntry) {
	e.pins--
	if e.pins == 0 {
		m.pinned -= e.size
	}
}

func (m *Mirror) unpinAllLocked(f *mirrorFetch) {
	for _, e := range f.entries {
		m.unpinLocked(e)
	}
}

func (m *Mirror) release(f *mirrorFetch) {
	f.once.Do(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.unpinAllLocked(f)
	})
}

// touchLocked counts a Fetch's use of e: a hit moves a copy to the front.
func (m *Mirror) touchLocked(e *mirrorEntry) {
	if !e.copied {
		m.misses++ // a download in progress: wait for it
		return
	}
	m.hits++
	m.lru.MoveToFront(e.elem)
}

// evictLocked removes least recently used unpinned copies until room more
// bytes fit in MaxBytes, or only pinned copies are left. A copy whose file
// cannot be removed stays indexed (its bytes are still on disk) and fails
// the call.
func (m *Mirror) evictLocked(room int64) error {
	if m.MaxBytes <= 0 {
		return nil
	}
	for el := m.lru.Back(); el != nil && m.bytes+room > m.MaxBytes; {
		prev := el.Prev()
		if e := el.Value.(*mirrorEntry); e.pins == 0 {
			// Removed under the lock: a new download of the key cannot
			// start (and be deleted by this) before the index forgets it.
			p := m.path(e.key)
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("cannot evict query cache copy %s (check the permissions of the cache under --data): %w", p, err)
			}
			m.lru.Remove(el)
			delete(m.index, e.key)
			m.bytes -= e.size
			m.evictions++
		}
		el = prev
	}
	return nil
}

// complete downloads f's own entries, then waits for the shared ones, and
// refreshes the modification time of the copies it found.
func (m *Mirror) complete(ctx context.Context, f *mirrorFetch) error {
	var own, shared []int
	for i := range f.entries {
		if f.own[i] {
			own = append(own, i)
		} else {
			shared = append(shared, i)
		}
	}
	err := runLimited(ctx, len(own), func(ctx context.Context, j int) error {
		return m.download(ctx, f.entries[own[j]])
	})
	if err != nil {
		return err
	}
	for _, i := range shared {
		if err := m.await(ctx, f, i); err != nil {
			return err
		}
	}
	m.touchFiles(f)
	return nil
}

// touchFiles sets the modification time of f's copies to now, which Open
// reads as their last use. Best effort: a failure only makes a restart
// misjudge recency. The copies are pinned, so none is being evicted.
func (m *Mirror) touchFiles(f *mirrorFetch) {
	now := time.Now()
	for i, e := range f.entries {
		if !f.own[i] {
			os.Chtimes(m.path(e.key), now, now)
		}
	}
}

// await waits for the download of f.entries[i] that another Fetch runs. If
// that Fetch abandoned it (its context ended) while ctx is still live, it
// takes the download over.
func (m *Mirror) await(ctx context.Context, f *mirrorFetch, i int) error {
	for {
		e := f.entries[i]
		if e.done != nil {
			select {
			case <-e.done:
			case <-ctx.Done():
				return fetchError(e.key, ctx.Err())
			}
		}
		if e.err == nil || !abandoned(e.err) || ctx.Err() != nil {
			return e.err
		}
		own, err := m.rejoin(f, i)
		if err != nil {
			return err
		}
		if own {
			return m.download(ctx, f.entries[i])
		}
	}
}

// abandoned reports whether a download failed because its Fetch's context
// ended, not because of the object or the disk.
func abandoned(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// rejoin replaces the failed f.entries[i] with the key's current entry, or
// a new download entry that f owns (own is true then).
func (m *Mirror) rejoin(f *mirrorFetch, i int) (own bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := f.entries[i]
	e := m.index[old.key]
	if e == nil {
		if err := m.evictLocked(old.size); err != nil {
			return false, err
		}
		e, own = m.newDownloadLocked(old.key, old.size), true
	} else {
		m.pinLocked(e)
	}
	m.unpinLocked(old)
	f.entries[i] = e
	return own, nil
}

// download copies e's object and settles the entry: a copy on success,
// removed from the index on failure. Either way it closes e.done.
func (m *Mirror) download(ctx context.Context, e *mirrorEntry) error {
	size, err := m.copyObject(ctx, e.key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		e.err = err
		if m.index[e.key] == e {
			delete(m.index, e.key)
		}
		m.bytes -= e.size // its holders unpin it on their way out
	} else {
		m.bytes += size - e.size
		if e.pins > 0 {
			m.pinned += size - e.size
		}
		e.size, e.copied = size, true
		e.elem = m.lru.PushFront(e)
	}
	close(e.done)
	return err
}

// copyObject downloads key to its local path through a ".fetch-*"
// temporary file, and returns its size.
func (m *Mirror) copyObject(ctx context.Context, key string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fetchError(key, err)
	}
	data, err := m.Bucket.Get(ctx, key)
	if err == nil {
		err = ctx.Err() // cancelled while the body arrived: stop here
	}
	if err != nil {
		return 0, fetchError(key, err)
	}
	local := m.path(key)
	if err := writeFileAtomic(local, data); err != nil {
		return 0, fmt.Errorf("cannot copy object %q to %s (check free space and permissions under --data, or lower --query-cache-size): %w", key, local, err)
	}
	return int64(len(data)), nil
}

// fetchError wraps a Get or Stat failure of key; a missing object is named
// as the manifest's inconsistency it is.
func fetchError(key string, err error) error {
	if objstore.IsNotFound(err) {
		return fmt.Errorf("cannot fetch object %q: the table's manifest lists it but the bucket has no such object (was it deleted outside sluice, e.g. by a bucket lifecycle rule?): %w", key, err)
	}
	return fmt.Errorf("cannot fetch object %q: %w", key, err)
}

// writeFileAtomic writes data to path through a ".fetch-*" temporary file
// in the same directory, fsynced before the rename so a crash cannot leave
// a torn copy under the final name.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// cachedFile is a copy Open found.
type cachedFile struct {
	key  string
	size int64
	used time.Time
}

// scan walks Dir, removing ".fetch-*" leftovers and listing the copies.
func (m *Mirror) scan() ([]cachedFile, error) {
	var found []cachedFile
	err := filepath.WalkDir(m.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".fetch-") {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		rel, err := filepath.Rel(m.Dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !d.Type().IsRegular() || !objstore.ValidKey(key) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		found = append(found, cachedFile{key: key, size: info.Size(), used: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot index query cache directory %s (check its permissions, or remove it: it is only a cache): %w", m.Dir, err)
	}
	return found, nil
}
