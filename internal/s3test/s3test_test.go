package s3test_test

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/s3test"
)

func TestStartStop(t *testing.T) {
	srv := s3test.StartServer(t)
	t.Logf("server: %s %s", srv.Endpoint, srv.CommandLine())
	if !strings.HasPrefix(srv.Endpoint, "127.0.0.1:") && !isExternal() {
		t.Fatalf("endpoint %s is not on loopback", srv.Endpoint)
	}
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.PutObject(ctx, srv.Bucket, "k", strings.NewReader("v"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	other := srv.NewBucket(t)
	if other == srv.Bucket {
		t.Fatal("NewBucket returned the same bucket")
	}

	srv.Stop()
	if conn, err := net.DialTimeout("tcp", srv.Endpoint, time.Second); err == nil {
		conn.Close()
		t.Fatal("the server still answers after Stop")
	}
	srv.Stop() // stopping a stopped server is a no-op
	srv.Start()
	obj, err := c.GetObject(ctx, srv.Bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	if err != nil || string(data) != "v" {
		t.Fatalf("after restart: %q, %v", data, err)
	}
}

func TestStartTriple(t *testing.T) {
	endpoint, key, secret := s3test.Start(t)
	if endpoint == "" || key == "" || secret == "" {
		t.Fatalf("Start = %q, %q, %q", endpoint, key, secret)
	}
}

// TestSidecarMetadata runs the Bucket acceptance test and a multipart upload
// against versitygw with metadata in a sidecar directory, the mode used on
// filesystems without user xattrs.
func TestSidecarMetadata(t *testing.T) {
	if isExternal() {
		t.Skip("external server")
	}
	*s3test.ForceSidecar = true
	defer func() { *s3test.ForceSidecar = false }()
	srv := s3test.StartServer(t)
	if !strings.Contains(srv.CommandLine(), "--sidecar") {
		t.Fatalf("not in sidecar mode: %s", srv.CommandLine())
	}
	b, err := objstore.NewS3(context.Background(), objstore.S3Config{
		Endpoint: srv.Endpoint, Region: s3test.Region, Bucket: srv.Bucket, Addressing: objstore.AddressPath,
		Insecure: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: objstore.MinPartSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	objstore.AcceptanceTest(t, b)
	big := make([]byte, 11<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := b.Put(t.Context(), "big", big); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Stat(t.Context(), "big"); err != nil || n != int64(len(big)) {
		t.Fatalf("Stat: %d, %v", n, err)
	}
}

func TestParseServerURL(t *testing.T) {
	s, err := s3test.ParseServerURL("http://AK:s%2Fecret@127.0.0.1:7070")
	if err != nil || s.Endpoint != "127.0.0.1:7070" || s.AccessKey != "AK" || s.SecretKey != "s/ecret" || s.Secure {
		t.Fatalf("%+v, %v", s, err)
	}
	if s, err := s3test.ParseServerURL("https://AK:SK@s3.local:443/"); err != nil || !s.Secure {
		t.Fatalf("%+v, %v", s, err)
	}
	for _, bad := range []string{"127.0.0.1:7070", "http://127.0.0.1:7070", "http://AK@h:1", "ftp://a:b@h:1", "http://a:b@h:1/bucket", "http://a:b@h:1?x=1"} {
		_, err := s3test.ParseServerURL(bad)
		if err == nil {
			t.Errorf("%s: no error", bad)
		} else if !strings.Contains(err.Error(), "ACCESS_KEY:SECRET_KEY@HOST:PORT") || strings.Contains(err.Error(), ":b@") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func isExternal() bool { return os.Getenv(s3test.EnvServer) != "" }
