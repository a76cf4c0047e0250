package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Dir is a Bucket on a local directory. Keys map to files below Root; Put
// writes a temporary file (named ".tmp-*", which List skips), fsyncs it and
// renames it into place, then fsyncs the directory, so objects are atomic and
// durable. The query service reads the files in place.
type Dir struct {
	Root string
}

// NewDir returns a Bucket on root, creating the directory.
func NewDir(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve storage directory %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create storage directory %q: %w", abs, err)
	}
	return &Dir{Root: abs}, nil
}

// Path is the local file that holds key.
func (d *Dir) Path(key string) string { return filepath.Join(d.Root, filepath.FromSlash(key)) }

func (d *Dir) path(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	return d.Path(key), nil
}

func (d *Dir) Put(ctx context.Context, key string, data []byte) error {
	return d.write(ctx, key, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// write stores what fill writes as key: a temporary file, fsynced and
// renamed into place, then the directory fsynced.
func (d *Dir) write(ctx context.Context, key string, fill func(io.Writer) error) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create directory for object %q: %w", key, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create object %q: %w", key, err)
	}
	tmp := f.Name()
	werr := fill(f)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, p)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write object %q: %w", key, werr)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	return nil
}

func (d *Dir) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot read object %q: %w", key, ErrNotFound)
	}
	return data, err
}

func (d *Dir) Stat(ctx context.Context, key string) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.IsDir()) {
		return 0, fmt.Errorf("cannot stat object %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d *Dir) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot delete object %q: %w", key, err)
	}
	return nil
}

// List walks the directory under the prefix's parent and yields matching keys
// in lexical order.
func (d *Dir) List(ctx context.Context, prefix string, fn func(key string) error) error {
	start := d.Root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = d.Path(prefix[:i])
	}
	var keys []string
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() && p != start && strings.HasPrefix(e.Name(), ".") {
			return filepath.SkipDir // reserved: the conditional writes' locks (.cas)
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(d.Root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("cannot list objects under %q: %w", prefix, err)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}
