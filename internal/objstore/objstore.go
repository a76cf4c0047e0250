// Package objstore is the object-store boundary: one small interface that the
// sink, the registry and the query service use, with a local-directory backend
// (local.go), an S3 backend (s3.go), and Open (url.go), which picks one from a
// storage URL.
package objstore

import (
	"context"
	"errors"
	"strings"
)

// ErrNotFound is returned (wrapped) by Get, Stat and Delete for a missing key.
var ErrNotFound = errors.New("object not found")

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// Bucket stores immutable-by-convention objects under slash-separated keys.
//
// Contract, which every backend passes (see AcceptanceTest):
//   - Put is atomic: a reader sees the whole new object or the old one (or
//     none), never a part. Putting the same key again replaces it, so an
//     upload retried after a crash with the same content is idempotent.
//   - Read-after-write: once Put returns nil, Get, Stat and List see it, and the
//     object is durable (survives a crash of this process and of the machine
//     for the local backend, which fsyncs).
//   - List yields keys in lexical order, only complete objects.
type Bucket interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	// Stat returns the object's size.
	Stat(ctx context.Context, key string) (int64, error)
	// List calls fn for each key starting with prefix, in lexical order,
	// stopping at fn's first error.
	List(ctx context.Context, prefix string, fn func(key string) error) error
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ValidKey reports whether key is a clean relative object key: non-empty
// slash-separated segments, none of them "." or "..", and no segment starting
// with "." (reserved for the local backend's temporary files).
func ValidKey(key string) bool {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") || strings.ContainsRune(seg, '\\') {
			return false
		}
	}
	return true
}
