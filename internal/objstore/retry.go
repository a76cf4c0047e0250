package objstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// Retry policy of the S3 backend. Each Bucket call retries its transient
// failures (see IsRetryable) with capped exponential backoff and jitter, but
// only within a bounded budget (S3Config.RetryBudget, DefaultRetryBudget when
// zero): the last wait is cut short so that the last attempt starts as the
// budget ends, and when that attempt fails too the call returns its error,
// wrapped with the number of attempts, and IsRetryable still reports true for
// it. So a call against a server that is down returns after about the budget.
// The pipeline engine above this layer retries failed flushes forever, so this
// layer must not; its retries only smooth over blips (a restarting server, a
// 503 SlowDown) without surfacing them as failed flushes.
//
// A single attempt is bounded by the caller's context and the HTTP transport's
// timeouts (dial, TLS handshake, response headers; see newTransport), not by
// the budget, because a legitimate upload of a large object can take longer
// than the budget.
const (
	DefaultRetryBudget = 30 * time.Second
	retryBackoffMin    = 100 * time.Millisecond
	retryBackoffMax    = 5 * time.Second
)

// retryableCodes are S3 error codes that mean "try again later", whatever the
// HTTP status that carried them (mostly 500, 503, 400 for RequestTimeout).
// ExpiredToken is here because the credential providers (STS, IAM) fetch a
// fresh token on the next attempt.
var retryableCodes = map[string]bool{
	"InternalError":              true,
	"ServiceUnavailable":         true,
	"SlowDown":                   true,
	"SlowDownRead":               true,
	"SlowDownWrite":              true,
	"RequestTimeout":             true,
	"RequestTimeTooSkewed":       false, // a clock problem: retrying does not help
	"Throttling":                 true,
	"ThrottlingException":        true,
	"RequestLimitExceeded":       true,
	"RequestThrottled":           true,
	"TooManyRequests":            true,
	"OperationAborted":           true, // a conflicting operation on the same bucket/key was in progress
	"ExpiredToken":               true,
	"ExpiredTokenException":      true,
	"XMinioServerNotInitialized": true,
}

// IsRetryable reports whether err is a transient failure of a store call that
// the same call may not hit again: the server could not be reached or dropped
// the connection (connection refused or reset, unexpected EOF, a network
// timeout), or it answered with a 5xx status, 408/429, or an S3 error code that
// means "later" (SlowDown, InternalError, RequestTimeout, throttling). It is
// false for nil, for the caller's cancellation (context.Canceled), for
// ErrNotFound, for S3 errors that retrying cannot fix (AccessDenied,
// NoSuchBucket, a bad signature) and for TLS certificate problems. The
// classification uses the errors' types (errors.As), never their text, so it
// sees through any wrapping with %w, including the S3 backend's own "gave up
// after N attempts" error.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrNotFound) {
		return false
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		if ok, known := retryableCodes[resp.Code]; known {
			return ok
		}
		return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode == http.StatusRequestTimeout
	}
	// Configuration problems that look like network errors: a certificate
	// the client does not trust, or TLS spoken to a plain-HTTP server (and
	// the reverse). Retrying cannot fix them.
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalidCert      x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalidCert) ||
		errors.As(err, &verify) || errors.As(err, &recordHeader) || errors.Is(err, http.ErrSchemeMismatch) {
		return false
	}
	// Timeouts: the transport's own (dial, TLS handshake, response header),
	// a deadline of the connection, or a deadline of the context.
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	// Any other failure below HTTP on the way to the server (a dial or read
	// error, or the connection closed before the response: minio-go reports
	// that one as a *url.Error without its io.EOF) is transient: the request
	// never got an answer.
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var urlErr *url.Error
	return errors.As(err, &urlErr)
}

// stopRetry marks an error that must end the retry loop at once and be
// returned as it is: an error from the caller's List callback.
type stopRetry struct{ err error }

func (e stopRetry) Error() string { return e.err.Error() }

// retrier runs one store call's attempts.
type retrier struct {
	budget time.Duration // <= 0: a single attempt
	sleep  func(ctx context.Context, d time.Duration) error
}

// retryBackoff is the wait after the given failed attempt (1-based):
// exponential from retryBackoffMin, capped at retryBackoffMax, with ±25%
// jitter so that callers failing together do not retry in lockstep.
func retryBackoff(attempt int) time.Duration {
	d := retryBackoffMin
	for i := 1; i < attempt && d < retryBackoffMax; i++ {
		d *= 2
	}
	d = min(d, retryBackoffMax)
	return d + time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// do runs f until it succeeds, fails with an error that is not retryable, the
// context ends, or the budget is spent (an attempt failing after that). The returned error
// is f's last error: as it is when f failed only once (the caller wraps it),
// else wrapped with the number of attempts and the time spent.
func (r retrier) do(ctx context.Context, f func(ctx context.Context) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		var stop stopRetry
		if errors.As(err, &stop) {
			return stop.err
		}
		if !IsRetryable(err) {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("%w (attempt %d, after %s)", err, attempt, time.Since(start).Round(time.Millisecond))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (after %d attempts in %s; last error: %w)", ctx.Err(), attempt,
				time.Since(start).Round(time.Millisecond), err)
		}
		// The last wait is cut to what is left of the budget, so that the
		// last attempt comes when the budget ends.
		wait := min(retryBackoff(attempt), r.budget-time.Since(start))
		if wait <= 0 {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("gave up after %d attempts in %s (retry budget %s): %w", attempt,
				time.Since(start).Round(time.Millisecond), r.budget, err)
		}
		sleep := r.sleep
		if sleep == nil {
			sleep = sleepCtx
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (after %d attempts in %s; last error: %w)", serr, attempt,
				time.Since(start).Round(time.Millisecond), err)
		}
	}
}
