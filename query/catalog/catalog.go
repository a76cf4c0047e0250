// Package catalog is the query service's view of the tables: the
// registry's table definitions and, for the files, the manifests that each
// table's partition owners commit in their progress objects (sink.Progress).
// A query never lists a table directory: a file is part of a table exactly
// when a manifest lists it.
//
// Manifests are cached by object stamp (inode and mtime on a directory,
// ETag on S3; objstore.Stamper), so a query costs one cheap stat per source
// partition of each table it names, and a manifest is decoded again only
// after its owner wrote it. Sealed segments are immutable and cached by key.
// On a store DuckDB cannot read in place (S3), the files a query keeps are
// copied into a bounded local cache (query.Mirror) and pinned until it ends.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/query"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// Catalog implements query.Catalog over a registry and an object store.
type Catalog struct {
	reg    *deploy.Registry
	bucket objstore.Bucket
	local  *objstore.Dir // the store itself when it is a directory; else the mirror's root
	mirror *query.Mirror // nil for a directory store
	log    *slog.Logger

	mu       sync.Mutex
	sources  map[string]cachedSource // by progress key
	segments map[string][]byte       // by segment key (immutable)
}

type cachedSource struct {
	stamp string
	files []sink.FileEntry
}

// LoadParallel bounds the progress objects a query reads at once.
const LoadParallel = 16

// New returns a catalog over bucket. On a directory store DuckDB reads the
// files in place; on any other the files a query reads are copied into
// mirror first (mirror must be set then).
func New(reg *deploy.Registry, bucket objstore.Bucket, mirror *query.Mirror, log *slog.Logger) (*Catalog, error) {
	c := &Catalog{reg: reg, bucket: bucket, log: log, sources: map[string]cachedSource{}, segments: map[string][]byte{}}
	if d, ok := bucket.(*objstore.Dir); ok {
		c.local = d
		return c, nil
	}
	if mirror == nil {
		return nil, errors.New("BUG: a catalog over a remote store needs a mirror")
	}
	c.mirror, c.local = mirror, &objstore.Dir{Root: mirror.Dir}
	return c, nil
}

// Dir is the local directory the tables' files are read from (the allowed
// directory of the query sandbox).
func (c *Catalog) Dir() string { return c.local.Path("tables") }

// Tables lists the registry's tables with their declared columns.
func (c *Catalog) Tables() []query.Table {
	var out []query.Table
	for _, t := range c.reg.Tables() {
		if err := t.Schema.Validate(); err != nil {
			c.log.Warn("table schema is invalid; not exposing it", "table", t.Name, "err", err)
			continue
		}
		qt := query.Table{Name: t.Name, Dir: filepath.Join(c.Dir(), t.Name), TimeColumn: t.Schema.TimeColumn}
		for _, col := range t.Schema.FileColumns() {
			qt.Columns = append(qt.Columns, query.Column{Name: col.Name, Type: schemas.DuckDBType(col.Type)})
		}
		for _, col := range t.Schema.PartitionColumns() {
			qt.PartitionColumns = append(qt.PartitionColumns, query.Column{Name: col.Name, Type: schemas.DuckDBType(col.Type)})
		}
		out = append(out, qt)
	}
	return out
}

// Files returns the committed files of table that keep accepts.
func (c *Catalog) Files(ctx context.Context, table string, keep func(query.FileStats) bool) (query.Files, error) {
	entries, err := c.entries(ctx, table)
	if err != nil {
		return query.Files{}, err
	}
	var out query.Files
	var keys []string
	schemas := map[string]bool{}
	for _, e := range entries {
		if keep != nil && !keep(query.FileStats{MinTime: e.MinTime, MaxTime: e.MaxTime, Part: e.Part}) {
			out.Pruned++
			continue
		}
		keys = append(keys, e.Key)
		out.Bytes += max(e.Size, 0)
		schemas[e.Schema] = true
	}
	out.UnionByName = len(schemas) > 1 || schemas[""]
	if c.mirror == nil {
		for _, k := range keys {
			out.Paths = append(out.Paths, c.local.Path(k))
		}
		return out, nil
	}
	paths, release, err := c.mirror.Fetch(ctx, keys)
	if err != nil {
		return query.Files{}, err
	}
	out.Paths, out.Release = paths, release
	return out, nil
}

// entries reads the manifests of every source of table (LoadParallel at a
// time) and returns their files.
func (c *Catalog) entries(ctx context.Context, table string) ([]sink.FileEntry, error) {
	sources := c.reg.TableSources(table)
	results := make([][]sink.FileEntry, len(sources))
	errs := make([]error, len(sources))
	sem := make(chan struct{}, LoadParallel)
	var wg sync.WaitGroup
	for i, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = c.sourceFiles(ctx, table, src)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []sink.FileEntry
	for _, r := range results {
		out = append(out, r...)
	}
	return out, nil
}

// sourceFiles returns the committed files of one source, from the cache
// while its progress object's stamp is unchanged.
func (c *Catalog) sourceFiles(ctx context.Context, table string, src sink.Source) ([]sink.FileEntry, error) {
	key := src.ProgressKey()
	stamp, err := c.stamp(ctx, key)
	if objstore.IsNotFound(err) {
		return nil, nil // never written
	}
	if err != nil {
		return nil, fmt.Errorf("cannot check the manifest of %s/%d: %w", src.Stream, src.Partition, err)
	}
	c.mu.Lock()
	cached, ok := c.sources[key]
	c.mu.Unlock()
	if ok && stamp != "" && cached.stamp == stamp {
		return cached.files, nil
	}
	data, err := c.bucket.Get(ctx, key)
	if objstore.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the manifest of %s/%d: %w", src.Stream, src.Partition, err)
	}
	p, err := sink.DecodeProgress(key, data)
	if err != nil {
		return nil, err
	}
	var files []sink.FileEntry
	if p.Manifest == nil {
		// Written before manifests and not claimed since: what a query saw then.
		files, err = sink.LegacyFiles(ctx, c.bucket, table, src, p.Next)
	} else {
		files, err = p.Manifest.AllFiles(ctx, c.segment)
	}
	if err != nil {
		return nil, err
	}
	// The stamp read before the object: a write in between is seen at the
	// next query, never missed.
	c.mu.Lock()
	c.sources[key] = cachedSource{stamp: stamp, files: files}
	c.mu.Unlock()
	return files, nil
}

func (c *Catalog) stamp(ctx context.Context, key string) (string, error) {
	if s, ok := c.bucket.(objstore.Stamper); ok {
		return s.Stamp(ctx, key)
	}
	_, err := c.bucket.Stat(ctx, key)
	return "", err // no stamps: read the object every time
}

// segment reads a sealed manifest segment, cached for good (segments are
// immutable).
func (c *Catalog) segment(ctx context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	data, ok := c.segments[key]
	c.mu.Unlock()
	if ok {
		return data, nil
	}
	data, err := c.bucket.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.segments[key] = data
	c.mu.Unlock()
	return data, nil
}
