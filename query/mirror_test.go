package query

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// The remote bucket of these tests is a second directory bucket, wrapped to
// count Gets and, for the concurrency tests, to hold them until released.

// mirrorBucket counts Gets and Stats; if gate is set, Get waits until it is
// closed (or ctx ends), announcing itself on started first.
type mirrorBucket struct {
	objstore.Bucket
	gate    chan struct{}
	started chan string

	mu    sync.Mutex
	gets  map[string]int
	stats int
}

func (b *mirrorBucket) Get(ctx context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	b.gets[key]++
	b.mu.Unlock()
	if b.started != nil {
		b.started <- key
	}
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.Bucket.Get(ctx, key)
}

func (b *mirrorBucket) Stat(ctx context.Context, key string) (int64, error) {
	b.mu.Lock()
	b.stats++
	b.mu.Unlock()
	return b.Bucket.Stat(ctx, key)
}

func (b *mirrorBucket) getCount(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gets[key]
}

func (b *mirrorBucket) totalGets() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.gets {
		n += c
	}
	return n
}

// newRemote returns a counting bucket holding objects (key: content).
func newRemote(t *testing.T, objects map[string]string) *mirrorBucket {
	t.Helper()
	d, err := objstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range objects {
		if err := d.Put(t.Context(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return &mirrorBucket{Bucket: d, gets: map[string]int{}}
}

// tenBytes is a 10-byte object body.
const tenBytes = "0123456789"

func mkey(name string) string { return "tables/t/dt=2026-11-22/" + name + ".parquet" }

func tenObjects(names ...string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		out[mkey(n)] = tenBytes
	}
	return out
}

// mustFetch fetches keys and returns release.
func mustFetch(t *testing.T, m *Mirror, keys ...string) func() {
	t.Helper()
	_, release, err := m.Fetch(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	return release
}

func copyExists(t *testing.T, m *Mirror, k string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(m.Dir, filepath.FromSlash(k)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// tempFiles lists the ".fetch-*" files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".fetch-") {
			out = append(out, p)
		}
		return err
	})
	return out
}

func TestMirrorFetchCopiesAskedKeys(t *testing.T) {
	remote := newRemote(t, map[string]string{mkey("a"): "aaa", mkey("b"): "bb", mkey("c"): "c"})
	m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: 1 << 20}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	keys := []string{mkey("b"), mkey("a"), mkey("b")}
	paths, release, err := m.Fetch(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for i, k := range keys {
		if want := filepath.Join(m.Dir, filepath.FromSlash(k)); paths[i] != want {
			t.Errorf("paths[%d] = %s, want %s", i, paths[i], want)
		}
	}
	for p, want := range map[string]string{paths[0]: "bb", paths[1]: "aaa"} {
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want 0644", p, fi.Mode(), err)
		}
	}
	if copyExists(t, m, mkey("c")) {
		t.Error("copied c, which was not asked for")
	}
	if got := remote.getCount(mkey("b")); got != 1 {
		t.Errorf("%d Gets of b (asked twice in one Fetch), want 1", got)
	}
	if tmp := tempFiles(t, m.Dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	before := remote.totalGets()
	mustFetch(t, m, mkey("a"), mkey("b"))()
	if got := remote.totalGets(); got != before {
		t.Errorf("second Fetch made %d Gets, want 0", got-before)
	}
	s := m.Stats()
	if s.Copies != 2 || s.Bytes != 5 || s.Hits != 2 || s.Misses != 2 || s.Pinned != 5 {
		t.Errorf("stats %+v, want 2 copies, 5 bytes (5 pinned), 2 hits, 2 misses", s)
	}
	release()
	release() // twice is fine
	if s := m.Stats(); s.Pinned != 0 {
		t.Errorf("pinned %d bytes after release, want 0", s.Pinned)
	}
}

func TestMirrorEvictsLeastRecentlyUsed(t *testing.T) {
	remote := newRemote(t, tenObjects("a", "b", "c", "d"))
	m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: 30}
	for _, n := range []string{"a", "b", "c", "a"} { // a is used again: b is the oldest
		mustFetch(t, m, mkey(n))()
	}
	mustFetch(t, m, mkey("d"))()
	for n, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := copyExists(t, m, mkey(n)); got != want {
			t.Errorf("copy of %s exists: %v, want %v", n, got, want)
		}
	}
	if s := m.Stats(); s.Bytes != 30 || s.Copies != 3 || s.Evictions != 1 {
		t.Errorf("stats %+v, want 30 bytes in 3 copies, 1 eviction", s)
	}
	// An evicted key is downloaded again.
	mustFetch(t, m, mkey("b"))()
	if got := remote.getCount(mkey("b")); got != 2 {
		t.Errorf("%d Gets of evicted b, want 2", got)
	}
}

func TestMirrorNeverEvictsPinned(t *testing.T) {
	remote := newRemote(t, tenObjects("a", "b", "c", "d"))
	m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: 20}
	releaseA := mustFetch(t, m, mkey("a")) // the oldest, but a running query reads it
	mustFetch(t, m, mkey("b"))()
	mustFetch(t, m, mkey("c"))()
	if !copyExists(t, m, mkey("a")) || copyExists(t, m, mkey("b")) || !copyExists(t, m, mkey("c")) {
		t.Fatal("want a (pinned) and c kept, b evicted")
	}
	releaseA()
	mustFetch(t, m, mkey("d"))() // now a is the least recently used
	if copyExists(t, m, mkey("a")) || !copyExists(t, m, mkey("c")) || !copyExists(t, m, mkey("d")) {
		t.Error("want a evicted once released, c and d kept")
	}
	if s := m.Stats(); s.Bytes > m.MaxBytes {
		t.Errorf("%d bytes over the bound %d", s.Bytes, m.MaxBytes)
	}
}

func TestMirrorOverBudget(t *testing.T) {
	remote := newRemote(t, tenObjects("a", "b", "c"))
	m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: 25}

	// A query that alone does not fit: refused before any download.
	_, release, err := m.Fetch(t.Context(), []string{mkey("a"), mkey("b"), mkey("c")})
	release() // a no-op, but callable
	if !IsUserError(err) || !strings.Contains(err.Error(), "raise --query-cache-size") ||
		!strings.Contains(err.Error(), "30 bytes") || !strings.Contains(err.Error(), "25 bytes") {
		t.Fatalf("want a user error naming 30 bytes needed and --query-cache-size 25 bytes, got %v", err)
	}
	if n := remote.totalGets(); n != 0 {
		t.Errorf("%d Gets for a refused query, want 0", n)
	}

	// A query that does not fit next to a running one: refused, the running
	// one keeps its pin, the refused one holds nothing.
	releaseA := mustFetch(t, m, mkey("a"))
	_, _, err = m.Fetch(t.Context(), []string{mkey("b"), mkey("c")})
	if !IsUserError(err) || !strings.Contains(err.Error(), "running queries hold 10 bytes more") {
		t.Fatalf("want a user error counting the running query's 10 bytes, got %v", err)
	}
	if s := m.Stats(); s.Pinned != 10 || s.Bytes != 10 {
		t.Errorf("stats %+v after a refused Fetch, want 10 bytes, all pinned by a", s)
	}
	releaseA()
	if s := m.Stats(); s.Pinned != 0 {
		t.Errorf("pinned %d bytes, want 0", s.Pinned)
	}
	mustFetch(t, m, mkey("b"), mkey("c"))() // fits now that a is released
	if copyExists(t, m, mkey("a")) {
		t.Error("a not evicted to make room")
	}
}

func TestMirrorConcurrentFetchesShareOneGet(t *testing.T) {
	for _, bound := range []int64{0, 1 << 20} {
		remote := newRemote(t, tenObjects("a"))
		remote.gate, remote.started = make(chan struct{}), make(chan string, 16)
		m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: bound}
		const n = 5
		errs := make(chan error, n)
		for range n {
			go func() {
				paths, release, err := m.Fetch(t.Context(), []string{mkey("a")})
				if err == nil {
					defer release()
					if b, rerr := os.ReadFile(paths[0]); rerr != nil || string(b) != tenBytes {
						err = errors.New("bad copy")
					}
				}
				errs <- err
			}()
		}
		<-remote.started
		waitMirror(t, func() bool { return m.Stats().Misses == n }) // all have joined
		close(remote.gate)
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if got := remote.getCount(mkey("a")); got != 1 {
			t.Errorf("MaxBytes %d: %d Gets for %d concurrent Fetches, want 1", bound, got, n)
		}
	}
}

func TestMirrorCancelStopsDownload(t *testing.T) {
	remote := newRemote(t, tenObjects("a"))
	remote.gate, remote.started = make(chan struct{}), make(chan string, 16)
	m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: 100}
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() {
		_, _, err := m.Fetch(ctx, []string{mkey("a")})
		errs <- err
	}()
	<-remote.started
	cancel()
	select {
	case err := <-errs:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), mkey("a")) {
			t.Fatalf("want a cancellation naming the key, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled Fetch did not stop its download")
	}
	if tmp := tempFiles(t, m.Dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if s := m.Stats(); s.Pinned != 0 || s.Bytes != 0 || s.Copies != 0 {
		t.Errorf("stats %+v after a cancelled Fetch, want nothing pinned, reserved or copied", s)
	}
	close(remote.gate)
	mustFetch(t, m, mkey("a"))() // the key is fetched afresh
	if got := remote.getCount(mkey("a")); got != 2 {
		t.Errorf("%d Gets, want 2", got)
	}
}

// TestMirrorCancelledSharerDoesNotFailOthers: when the Fetch that started a
// shared download is cancelled, the other one takes it over.
func TestMirrorCancelledSharerDoesNotFailOthers(t *testing.T) {
	remote := newRemote(t, tenObjects("a"))
	remote.gate, remote.started = make(chan struct{}), make(chan string, 16)
	m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: 100}
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, _, err := m.Fetch(ctx, []string{mkey("a")})
		first <- err
	}()
	<-remote.started
	second := make(chan error, 1)
	go func() {
		_, release, err := m.Fetch(t.Context(), []string{mkey("a")})
		release()
		second <- err
	}()
	waitMirror(t, func() bool { return m.Stats().Misses == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Fetch: %v", err)
	}
	<-remote.started // the second Fetch's own Get
	close(remote.gate)
	if err := <-second; err != nil {
		t.Fatalf("the other Fetch failed: %v", err)
	}
	if s := m.Stats(); s.Copies != 1 || s.Pinned != 0 {
		t.Errorf("stats %+v, want 1 copy, nothing pinned", s)
	}
}

func TestMirrorMissingObject(t *testing.T) {
	for _, bound := range []int64{0, 100} { // found missing by Get, by Stat
		remote := newRemote(t, tenObjects("a"))
		m := &Mirror{Bucket: remote, Dir: t.TempDir(), MaxBytes: bound}
		gone := mkey("gone")
		_, _, err := m.Fetch(t.Context(), []string{mkey("a"), gone})
		if !objstore.IsNotFound(err) || !strings.Contains(err.Error(), gone) {
			t.Errorf("MaxBytes %d: want a not-found error naming %s, got %v", bound, gone, err)
		}
		if s := m.Stats(); s.Pinned != 0 {
			t.Errorf("MaxBytes %d: %d bytes pinned after a failed Fetch", bound, s.Pinned)
		}
	}
}

func TestMirrorRefusesInvalidKeys(t *testing.T) {
	m := &Mirror{Bucket: newRemote(t, nil), Dir: t.TempDir()}
	for _, k := range []string{"", "../etc/passwd", "/abs", "tables/.fetch-1", "a//b"} {
		if _, _, err := m.Fetch(t.Context(), []string{k}); err == nil || !strings.HasPrefix(err.Error(), "BUG: ") {
			t.Errorf("key %q: want a BUG error, got %v", k, err)
		}
	}
}

func TestMirrorOpenAfterRestart(t *testing.T) {
	remote := newRemote(t, tenObjects("a", "b", "c", "d"))
	dir := t.TempDir()
	// What a previous run left: copies last used in order c, a, b, and a
	// crash's partial download.
	old := time.Now().Add(-time.Hour)
	for i, n := range []string{"c", "a", "b"} {
		p := filepath.Join(dir, filepath.FromSlash(mkey(n)))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(tenBytes), 0o644); err != nil {
			t.Fatal(err)
		}
		used := old.Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, used, used)
	}
	leftover := filepath.Join(dir, "tables", "t", "dt=2026-11-22", ".fetch-123")
	os.WriteFile(leftover, []byte("partial"), 0o644)

	m := &Mirror{Bucket: remote, Dir: dir, MaxBytes: 20} // lowered since: c goes
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if copyExists(t, m, mkey("c")) || !copyExists(t, m, mkey("a")) || !copyExists(t, m, mkey("b")) {
		t.Error("want the least recently used copy (c) evicted to respect the bound")
	}
	if s := m.Stats(); s.Copies != 2 || s.Bytes != 20 {
		t.Errorf("stats %+v, want 2 copies of 20 bytes", s)
	}
	mustFetch(t, m, mkey("a"))() // a hit: no Get, and now the most recent
	if n := remote.totalGets(); n != 0 {
		t.Errorf("%d Gets for a copy found by Open, want 0", n)
	}
	mustFetch(t, m, mkey("d"))()
	if copyExists(t, m, mkey("b")) || !copyExists(t, m, mkey("a")) || !copyExists(t, m, mkey("d")) {
		t.Error("want b (least recently used) evicted for d")
	}
	if s := m.Stats(); s.Bytes > 20 {
		t.Errorf("%d bytes over the bound", s.Bytes)
	}

	// The order survives a second restart: d was downloaded after a hit.
	m2 := &Mirror{Bucket: remote, Dir: dir, MaxBytes: 10}
	if err := m2.Open(); err != nil {
		t.Fatal(err)
	}
	if s := m2.Stats(); s.Copies != 1 || s.Bytes != 10 || !copyExists(t, m2, mkey("d")) {
		t.Errorf("stats %+v after the second restart, want only d kept", s)
	}
}

// waitMirror polls cond for up to 10s.
func waitMirror(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
	}
}
