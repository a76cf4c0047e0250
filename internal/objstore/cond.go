package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/sluice-dev/sluice/internal/failpoint"
)

// ErrConflict is returned (wrapped) by PutIfVersion when the object is not
// at the version the caller read: someone else wrote it meanwhile.
var ErrConflict = errors.New("object changed since it was read")

// IsConflict reports whether err is a failed conditional write.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// Versioned is a Bucket that can write conditionally (compare-and-swap), so
// that two writers of one object (a worker and a zombie it replaced) cannot
// both succeed. Every backend here implements it; the sink's progress
// records use it for fencing.
type Versioned interface {
	// GetVersion reads an object and its version (an opaque token, such as
	// an S3 ETag); a missing object is ErrNotFound.
	GetVersion(ctx context.Context, key string) (data []byte, version string, err error)
	// PutIfVersion writes the object only if it is still at version ("":
	// only if it does not exist), and returns its new version. Otherwise
	// it fails with ErrConflict and writes nothing.
	PutIfVersion(ctx context.Context, key string, data []byte, version string) (string, error)
}

// contentVersion is the version of a local object: its content's hash.
func contentVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// casMu serializes conditional writes within this process; a lock file per
// key (flock, under ROOT/.cas) serializes them across processes sharing the
// directory. The lock is per key so that a process stopped (not dead) in the
// middle of one write holds up only the writers of that object, not every
// conditional write of the store; the kernel drops the lock when the
// process dies.
var casMu sync.Mutex

// casLock is the path of key's lock file.
func (d *Dir) casLock(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.Root, ".cas", hex.EncodeToString(sum[:12])+".lock")
}

func (d *Dir) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	data, err := d.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	return data, contentVersion(data), nil
}

func (d *Dir) PutIfVersion(ctx context.Context, key string, data []byte, version string) (string, error) {
	defer failpoint.Critical()()
	casMu.Lock()
	defer casMu.Unlock()
	path := d.casLock(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("cannot lock object %q for a conditional write: %w", key, err)
	}
	lock, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("cannot lock object %q for a conditional write: %w", key, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("cannot lock object %q for a conditional write: %w", key, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	current := ""
	if old, err := d.Get(ctx, key); err == nil {
		current = contentVersion(old)
	} else if !IsNotFound(err) {
		return "", err
	}
	if current != version {
		return "", fmt.Errorf("cannot write object %q: %w", key, ErrConflict)
	}
	if err := d.Put(ctx, key, data); err != nil {
		return "", err
	}
	return contentVersion(data), nil
}

func (s *S3) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	return s.read(ctx, key)
}

func (s *S3) PutIfVersion(ctx context.Context, key string, data []byte, version string) (string, error) {
	k, err := s.key(key)
	if err != nil {
		return "", err
	}
	var etag string
	err = s.retry.do(ctx, func(ctx context.Context) error {
		opts := minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s.partSize}
		if version == "" {
			opts.SetMatchETagExcept("*")
		} else {
			opts.SetMatchETag(version)
		}
		info, err := s.client.PutObject(ctx, s.bucket, k, bytes.NewReader(data), int64(len(data)), opts)
		etag = info.ETag
		return err
	})
	if isPreconditionFailed(err) {
		return "", fmt.Errorf("cannot write object %q to %s: %w", key, s.name, ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("cannot write object %q to %s: %w", key, s.name, err)
	}
	return etag, nil
}

// Stamper is a Bucket that can tell cheaply whether an object changed: a
// stamp differs from the last one seen whenever the object was written
// again. Readers cache an object's decoded form by its stamp (the query
// service does so for manifests).
type Stamper interface {
	Stamp(ctx context.Context, key string) (string, error)
}

// Stamp returns the file's inode, modification time and size: every Put
// renames a new file into place, so a new write always changes the inode.
func (d *Dir) Stamp(ctx context.Context, key string) (string, error) {
	p, err := d.path(key)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.IsDir()) {
		return "", fmt.Errorf("cannot stat object %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d-%d-%d", ino, fi.ModTime().UnixNano(), fi.Size()), nil
}

// Stamp returns the object's ETag (one HEAD request).
func (s *S3) Stamp(ctx context.Context, key string) (string, error) {
	info, err := s.head(ctx, key)
	return info.ETag, err
}
