package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/minio/minio-go/v7"
)

// Streamer is a Bucket that also moves objects of any size between local
// files and the store without holding them in memory (Put and Get take and
// return whole byte slices). Both backends implement it; the query
// service's async results use it.
//
// PutFile has Put's contract (atomic, durable when it returns). Open
// returns the object's content and size, or an error for which IsNotFound
// is true; the caller closes it. An object replaced while it is read may
// be read partly old, partly new on S3: use it for objects written once.
type Streamer interface {
	Bucket
	PutFile(ctx context.Context, key, path string) error
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
}

var (
	_ Streamer = (*Dir)(nil)
	_ Streamer = (*S3)(nil)
)

// PutFile copies the file at path in as key (a temporary file, fsynced and
// renamed into place, as Put does).
func (d *Dir) PutFile(ctx context.Context, key, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %q to store as object %q: %w", path, key, err)
	}
	defer src.Close()
	return d.write(ctx, key, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
}

// Open opens the object's file.
func (d *Dir) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("cannot read object %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read object %q: %w", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("cannot read object %q: %w", key, err)
	}
	return f, st.Size(), nil
}

// PutFile uploads the file at path as key, in parts past the part size
// (retried within the budget, each attempt from the file's start).
func (s *S3) PutFile(ctx context.Context, key, path string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	err = s.retry.do(ctx, func(ctx context.Context) error {
		_, err := s.client.FPutObject(ctx, s.bucket, k, path, minio.PutObjectOptions{
			PartSize:    s.partSize,
			ContentType: "application/octet-stream",
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot write object %q to %s from %q: %w", key, s.name, path, err)
	}
	return nil
}

// Open starts reading the object (one GET, retried within the budget until
// its answer starts; a failure later surfaces from Read).
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, 0, err
	}
	var obj *minio.Object
	var size int64
	err = s.retry.do(ctx, func(ctx context.Context) error {
		o, err := s.client.GetObject(ctx, s.bucket, k, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		info, err := o.Stat()
		if err != nil {
			o.Close()
			return err
		}
		obj, size = o, info.Size
		return nil
	})
	if isNoSuchKey(err) {
		return nil, 0, fmt.Errorf("cannot read object %q from %s: %w", key, s.name, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read object %q from %s: %w", key, s.name, err)
	}
	return obj, size, nil
}
