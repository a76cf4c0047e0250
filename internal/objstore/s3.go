package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3 part sizes. Put sends an object larger than the part size as a multipart
// upload (parts sent 4 at a time; the object appears whole, only when the
// upload completes, so Put stays atomic); smaller objects go in one PUT. 16 MiB
// is minio-go's own default: S3 allows at most 10,000 parts (so objects up to
// 160 GiB) and parts of at least 5 MiB. A bigger part size means fewer
// requests for big files, a smaller one less to resend when a part fails.
const (
	DefaultPartSize = 16 << 20
	MinPartSize     = 5 << 20
	MaxPartSize     = 5 << 30
)

// Addressing says how requests name the bucket.
type Addressing int

const (
	// AddressAuto lets minio-go choose: virtual-host style for Amazon S3 and
	// a few known clouds, path style for everything else.
	AddressAuto Addressing = iota
	// AddressPath sends http://endpoint/bucket/key (MinIO, versitygw, Ceph
	// and most self-hosted servers).
	AddressPath
	// AddressVirtualHost sends http://bucket.endpoint/key.
	AddressVirtualHost
)

// S3Config describes a bucket (and a key prefix in it) on an S3-compatible
// server. Only Bucket is required.
type S3Config struct {
	// Endpoint is the server's host[:port], without a scheme; empty means
	// Amazon S3 (s3.amazonaws.com).
	Endpoint string
	// Region is the bucket's region. Empty means AWS_REGION or
	// AWS_DEFAULT_REGION from the environment, else minio-go asks the server
	// once (GetBucketLocation) and caches the answer.
	Region string
	// Bucket is the bucket's name.
	Bucket string
	// Prefix is prepended to every key, so that several deployments (or a
	// deployment and other data) can share a bucket: "sluice/prod" stores key
	// "tables/t/x.parquet" as "sluice/prod/tables/t/x.parquet". Empty: keys
	// are stored as they are. Leading and trailing slashes are ignored.
	Prefix string
	// Addressing chooses path-style or virtual-host-style requests.
	Addressing Addressing
	// Insecure talks plain HTTP instead of HTTPS (a test server, a server on
	// loopback, or one behind a TLS-terminating sidecar).
	Insecure bool
	// AccessKey, SecretKey and SessionToken are static credentials. When
	// AccessKey is empty the usual chain is used, first that finds a key wins:
	// the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN; MinIO's MINIO_ACCESS_KEY / MINIO_SECRET_KEY), the
	// shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
	// ~/.aws/credentials, profile AWS_PROFILE or "default"), MinIO's
	// client config (~/.mc/config.json), then IAM (web identity, ECS task
	// role, EC2 instance metadata).
	AccessKey, SecretKey, SessionToken string
	// PartSize is the multipart part size in bytes, between MinPartSize and
	// MaxPartSize; 0 means DefaultPartSize.
	PartSize uint64
	// RetryBudget bounds the time each call spends retrying transient
	// failures (see IsRetryable): 0 means DefaultRetryBudget, a negative
	// value means a single attempt.
	RetryBudget time.Duration
	// Create makes NewS3 create the bucket when it does not exist; without
	// it, a missing bucket is an error.
	Create bool
}

// S3 is a Bucket on an S3-compatible object store (Amazon S3, MinIO,
// versitygw, Ceph RGW, R2, ...), through minio-go.
//
// It keeps the Bucket contract with S3's own guarantees: a PUT, and the
// completion of a multipart upload, replace the object atomically; since
// December 2020 Amazon S3 (like the self-hosted servers) is strongly
// consistent, so Get, Stat and List see an object once Put has returned, and
// the object is durable then. ListObjectsV2 returns keys in lexical (UTF-8
// byte) order; List checks that and fails rather than yield out of order.
//
// Every call is retried on transient failures within the retry budget
// (S3Config.RetryBudget, see IsRetryable), minio-go's own retries being off.
// A multipart upload that fails is aborted; one cut short by a crash of the
// process leaves its parts on the server, invisible but billed, until a
// lifecycle rule (AbortIncompleteMultipartUpload) removes them.
//
// List skips keys that are not valid Bucket keys (ValidKey), such as the
// "dir/" markers some consoles create.
//
// An S3 is safe for concurrent use.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or ending in "/"
	partSize uint64
	retry    retrier
	name     string // s3://bucket/prefix at URL, for messages
	listPage int    // keys per ListObjectsV2 request; 0: the server's (1,000 on S3)
}

var _ Bucket = (*S3)(nil)

// NewS3 connects to the bucket cfg describes and checks that it exists
// (creating it if cfg.Create is set). It does not keep a connection open: the
// check is one request (retried within the budget), and every later call makes
// its own requests.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	s := &S3{
		bucket:   cfg.Bucket,
		prefix:   prefix,
		partSize: cfg.PartSize,
		retry:    retrier{budget: cfg.RetryBudget},
		name:     "s3://" + cfg.Bucket + "/" + prefix,
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.retry.budget == 0 {
		s.retry.budget = DefaultRetryBudget
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	region := cfg.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.FileAWSCredentials{},
			&credentials.FileMinioClient{},
			&credentials.IAM{},
		})
	}
	lookup := map[Addressing]minio.BucketLookupType{
		AddressAuto:        minio.BucketLookupAuto,
		AddressPath:        minio.BucketLookupPath,
		AddressVirtualHost: minio.BucketLookupDNS,
	}[cfg.Addressing]
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       !cfg.Insecure,
		Transport:    newTransport(!cfg.Insecure),
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   1, // we retry, within a budget (retry.go)
	})
	if err != nil {
		return nil, fmt.Errorf("cannot set up S3 client for %s at %s: %w", s.name, endpoint, err)
	}
	s.client = client
	s.name += " at " + client.EndpointURL().String()

	var exists bool
	err = s.retry.do(ctx, func(ctx context.Context) (err error) {
		exists, err = client.BucketExists(ctx, cfg.Bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot reach bucket %s: %w", s.name, err)
	}
	if !exists {
		if !cfg.Create {
			return nil, fmt.Errorf("bucket %q does not exist at %s: create it (for example `aws s3 mb s3://%s`), or add create=true to the store URL (S3Config.Create) to have sluice create it",
				cfg.Bucket, client.EndpointURL(), cfg.Bucket)
		}
		err = s.retry.do(ctx, func(ctx context.Context) error {
			err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: region})
			if code := minio.ToErrorResponse(err).Code; code == minio.BucketAlreadyOwnedByYou {
				return nil // created by a concurrent NewS3, or by our own retried request
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("cannot create bucket %s: %w", s.name, err)
		}
	}
	return s, nil
}

func (cfg S3Config) validate() error {
	var errs []error
	if cfg.Bucket == "" {
		errs = append(errs, errors.New("no bucket name: want s3://BUCKET[/PREFIX]"))
	} else if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("invalid bucket name %q: %w", cfg.Bucket, err))
	}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" && !ValidKey(p) {
		errs = append(errs, fmt.Errorf("invalid key prefix %q: want slash-separated names, none empty, \".\", \"..\" or starting with \".\"", cfg.Prefix))
	}
	if strings.Contains(cfg.Endpoint, "/") {
		errs = append(errs, fmt.Errorf("invalid endpoint %q: want host or host:port, without a scheme or path", cfg.Endpoint))
	}
	if cfg.PartSize != 0 && (cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize) {
		errs = append(errs, fmt.Errorf("part size %d out of range: S3 wants %d (5 MiB) to %d (5 GiB) bytes", cfg.PartSize, MinPartSize, MaxPartSize))
	}
	if cfg.Addressing < AddressAuto || cfg.Addressing > AddressVirtualHost {
		errs = append(errs, fmt.Errorf("invalid addressing %d", cfg.Addressing))
	}
	if cfg.AccessKey != "" && cfg.SecretKey == "" {
		errs = append(errs, errors.New("access key given without a secret key"))
	}
	return errors.Join(errs...)
}

// newTransport is minio-go's default transport with a shorter dial timeout,
// so that an unreachable server costs a retry, not half the budget.
func newTransport(secure bool) http.RoundTripper {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil // minio-go then builds its default itself
	}
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return tr
}

// String is the bucket and prefix, and the server's URL.
func (s *S3) String() string { return s.name }

func (s *S3) key(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	return s.prefix + key, nil
}

func isNoSuchKey(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.Code == minio.NoSuchKey
}

// Put stores data under key, in one PUT or, past the part size, as a
// multipart upload.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	err = s.retry.do(ctx, func(ctx context.Context) error {
		_, err := s.client.PutObject(ctx, s.bucket, k, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
			PartSize:    s.partSize,
			ContentType: "application/octet-stream",
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot write object %q to %s: %w", key, s.name, err)
	}
	return nil
}

// Get reads the whole object.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	data, _, err := s.read(ctx, key)
	return data, err
}

// read reads the whole object and its ETag. minio-go may read an object in
// several requests conditional on the ETag of the first; an object that is
// written again meanwhile (a progress object, which its owner rewrites
// often) fails them with 412, and the read starts over: a reader always
// gets one whole version.
func (s *S3) read(ctx context.Context, key string) ([]byte, string, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, "", err
	}
	var data []byte
	var etag string
	err = s.retry.do(ctx, func(ctx context.Context) error {
		for attempt := 1; ; attempt++ {
			data, etag, err = s.readOnce(ctx, k)
			if !isPreconditionFailed(err) || attempt == 10 {
				return err
			}
		}
	})
	if isNoSuchKey(err) {
		return nil, "", fmt.Errorf("cannot read object %q from %s: %w", key, s.name, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("cannot read object %q from %s: %w", key, s.name, err)
	}
	return data, etag, nil
}

func (s *S3) readOnce(ctx context.Context, k string) ([]byte, string, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, k, minio.GetObjectOptions{})
	if err != nil {
		return nil, "", err
	}
	defer obj.Close()
	info, err := obj.Stat() // sends the GET; the body is read below
	if err != nil {
		return nil, "", err
	}
	if int64(int(info.Size)) != info.Size || info.Size < 0 {
		return nil, "", fmt.Errorf("object of %d bytes is too large to read into memory", info.Size)
	}
	buf := make([]byte, info.Size)
	if _, err := io.ReadFull(obj, buf); err != nil {
		return nil, "", err
	}
	return buf, info.ETag, nil
}

func isPreconditionFailed(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && (resp.StatusCode == 412 || resp.Code == "PreconditionFailed")
}

// Stat returns the object's size (one HEAD request).
func (s *S3) Stat(ctx context.Context, key string) (int64, error) {
	info, err := s.head(ctx, key)
	return info.Size, err
}

// head sends one HEAD request for key.
func (s *S3) head(ctx context.Context, key string) (minio.ObjectInfo, error) {
	k, err := s.key(key)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	var info minio.ObjectInfo
	err = s.retry.do(ctx, func(ctx context.Context) error {
		info, err = s.client.StatObject(ctx, s.bucket, k, minio.StatObjectOptions{})
		return err
	})
	if isNoSuchKey(err) {
		return minio.ObjectInfo{}, fmt.Errorf("cannot stat object %q in %s: %w", key, s.name, ErrNotFound)
	}
	if err != nil {
		return minio.ObjectInfo{}, fmt.Errorf("cannot stat object %q in %s: %w", key, s.name, err)
	}
	return info, nil
}

// Delete removes the object; S3 answers a delete of a missing key with
// success, and a NoSuchKey from a server that does not is ignored too.
func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	err = s.retry.do(ctx, func(ctx context.Context) error {
		err := s.client.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{})
		if isNoSuchKey(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot delete object %q from %s: %w", key, s.name, err)
	}
	return nil
}

// List pages through ListObjectsV2 (1,000 keys a request) and calls fn for
// each key as it arrives, in lexical order. A page that fails is retried like
// any call, from the last key already passed to fn, so fn sees no key twice.
// An error from fn stops the listing and is returned as it is.
func (s *S3) List(ctx context.Context, prefix string, fn func(key string) error) error {
	var last string // the last full key yielded
	var fnErr error
	err := s.retry.do(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // ends minio-go's listing when we stop early
		opts := minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true, MaxKeys: s.listPage}
		if last != "" {
			opts.StartAfter = last
		}
		for obj := range s.client.ListObjectsIter(ctx, s.bucket, opts) {
			if obj.Err != nil {
				return obj.Err
			}
			if obj.Key <= last {
				return stopRetry{fmt.Errorf("the server listed %q after %q: S3 lists keys in lexical order, and sluice relies on it", obj.Key, last)}
			}
			last = obj.Key
			key := strings.TrimPrefix(obj.Key, s.prefix)
			if !ValidKey(key) {
				continue
			}
			if err := fn(key); err != nil {
				fnErr = err
				return stopRetry{err}
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("cannot list objects under %q in %s: %w", prefix, s.name, err)
	}
	return nil
}
