package objstore

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestIsRetryable(t *testing.T) {
	urlErr := func(err error) error { return &url.Error{Op: "Put", URL: "http://127.0.0.1:1/b/k", Err: err} }
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: errno}}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", fmt.Errorf("cannot read: %w", ErrNotFound), false},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"canceled in url.Error", urlErr(context.Canceled), false},
		{"deadline", context.DeadlineExceeded, true},
		{"SlowDown", minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, true},
		{"InternalError", minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, true},
		{"RequestTimeout 400", minio.ErrorResponse{Code: "RequestTimeout", StatusCode: 400}, true},
		{"502 no code", minio.ErrorResponse{StatusCode: 502}, true},
		{"429", minio.ErrorResponse{Code: "TooManyRequests", StatusCode: 429}, true},
		{"NoSuchKey", minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}, false},
		{"NoSuchBucket", minio.ErrorResponse{Code: "NoSuchBucket", StatusCode: 404}, false},
		{"AccessDenied", minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, false},
		{"SignatureDoesNotMatch", minio.ErrorResponse{Code: "SignatureDoesNotMatch", StatusCode: 403}, false},
		{"clock skew", minio.ErrorResponse{Code: "RequestTimeTooSkewed", StatusCode: 403}, false},
		{"wrapped SlowDown", fmt.Errorf("cannot write: gave up after 3 attempts: %w", minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}), true},
		{"connection refused", urlErr(dial(syscall.ECONNREFUSED)), true},
		{"connection reset", &net.OpError{Op: "read", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}, true},
		{"broken pipe", urlErr(&net.OpError{Op: "write", Err: syscall.EPIPE}), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"EOF in url.Error", urlErr(io.EOF), true},
		{"minio's closed-connection error", urlErr(errors.New("Connection closed by foreign host http://x. Retry again.")), true},
		{"dns timeout", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "timeout", IsTimeout: true}}), true},
		{"dns not found", &net.DNSError{Err: "no such host", Name: "nope", IsNotFound: true}, false},
		{"unknown authority", urlErr(x509.UnknownAuthorityError{}), false},
		{"https to http server", urlErr(http.ErrSchemeMismatch), false},
		{"plain error", errors.New("invalid argument"), false},
	} {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("%s: IsRetryable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestRetrier(t *testing.T) {
	ctx := context.Background()
	var slept time.Duration
	fake := func(_ context.Context, d time.Duration) error { slept += d; return nil }
	transient := minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}

	// Succeeds on the third attempt.
	n := 0
	err := retrier{budget: time.Hour, sleep: fake}.do(ctx, func(context.Context) error {
		if n++; n < 3 {
			return transient
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("%d attempts, %v", n, err)
	}

	// A permanent error is not retried and comes back as it is.
	n = 0
	perm := minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}
	err = retrier{budget: time.Hour, sleep: fake}.do(ctx, func(context.Context) error { n++; return perm })
	if n != 1 || err != error(perm) {
		t.Fatalf("%d attempts, %v", n, err)
	}

	// No budget: one attempt.
	n = 0
	err = retrier{budget: -1, sleep: fake}.do(ctx, func(context.Context) error { n++; return transient })
	if n != 1 || !IsRetryable(err) {
		t.Fatalf("%d attempts, %v", n, err)
	}

	// A stopRetry ends it at once with the inner error.
	inner := errors.New("from fn")
	err = retrier{budget: time.Hour, sleep: fake}.do(ctx, func(context.Context) error { return stopRetry{inner} })
	if err != inner {
		t.Fatal(err)
	}

	// The budget bounds real time: attempts stop once it is spent, the
	// last error stays retryable and is wrapped.
	n = 0
	start := time.Now()
	err = retrier{budget: 700 * time.Millisecond}.do(ctx, func(context.Context) error { n++; return transient })
	took := time.Since(start)
	if took < 700*time.Millisecond || took > 20*time.Second || n < 3 || !IsRetryable(err) || !errors.Is(err, transient) {
		t.Fatalf("after %s: %d attempts, %v", took, n, err)
	}

	// The context ends the waiting.
	cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = retrier{budget: time.Hour}.do(cctx, func(context.Context) error { return transient })
	if time.Since(start) > 20*time.Second || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, transient) {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
}

func TestRetryBackoff(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		d := retryBackoff(attempt)
		base := retryBackoffMin << min(attempt-1, 10)
		base = min(base, retryBackoffMax)
		if d < base*3/4 || d > base*5/4 {
			t.Errorf("attempt %d: %s, want %s ± 25%%", attempt, d, base)
		}
	}
}
