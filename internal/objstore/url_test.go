package objstore

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseS3URL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want S3Config
	}{
		{"s3://bucket", S3Config{Bucket: "bucket"}},
		{"s3://bucket/", S3Config{Bucket: "bucket"}},
		{"S3://bucket/a/b/", S3Config{Bucket: "bucket", Prefix: "a/b"}},
		{"s3://my.bucket-1/deploy/prod?region=eu-west-1", S3Config{Bucket: "my.bucket-1", Prefix: "deploy/prod", Region: "eu-west-1"}},
		{"s3://bkt/p?endpoint=127.0.0.1:7070&region=us-east-1&path_style=true&insecure=true",
			S3Config{Bucket: "bkt", Prefix: "p", Endpoint: "127.0.0.1:7070", Region: "us-east-1", Addressing: AddressPath, Insecure: true}},
		{"s3://bkt?endpoint=http://minio:9000", S3Config{Bucket: "bkt", Endpoint: "minio:9000", Insecure: true}},
		{"s3://bkt?endpoint=https://minio:9000/&insecure=false", S3Config{Bucket: "bkt", Endpoint: "minio:9000"}},
		{"s3://bkt?endpoint=s3.example.com&path_style=false", S3Config{Bucket: "bkt", Endpoint: "s3.example.com", Addressing: AddressVirtualHost}},
		{"s3://bkt?create=true&part_size=32MiB&retry_budget=1m", S3Config{Bucket: "bkt", Create: true, PartSize: 32 << 20, RetryBudget: time.Minute}},
		{"s3://bkt?part_size=5242880&retry_budget=0", S3Config{Bucket: "bkt", PartSize: 5 << 20, RetryBudget: -1}},
		{"s3://bkt?part_size=1g&create=1&insecure=0", S3Config{Bucket: "bkt", PartSize: 1 << 30, Create: true}},
	} {
		got, err := ParseS3URL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.url, got, tc.want)
		}
	}
}

func TestParseS3URLErrors(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want []string // each must be in the error
		hide string   // must not be
	}{
		{"s3://", []string{"no bucket name", "want s3://BUCKET"}, ""},
		{"s3:bucket/x", []string{"two slashes"}, ""},
		{"s3://ab", []string{"invalid bucket name"}, ""},
		{"s3://b/a/../c", []string{"invalid key prefix"}, ""},
		{"s3://b/a//c", []string{"invalid key prefix"}, ""},
		{"s3://b:9000/p", []string{`port "9000"`, "endpoint=HOST:PORT"}, ""},
		{"s3://key:hunter2@b/p", []string{"credentials in the URL", "AWS_ACCESS_KEY_ID"}, "hunter2"},
		{"s3://b#frag", []string{"fragment"}, ""},
		// every problem at once
		{"s3://b?endpoit=x&regin=y&path_style=maybe&insecure=2&create=yes&part_size=1MiB&retry_budget=forever",
			[]string{`unknown option "endpoit"`, `unknown option "regin"`, "known are create, endpoint, insecure, part_size, path_style, region, retry_budget",
				`path_style="maybe"`, `insecure="2"`, `create="yes"`, `part_size="1MiB"`, `retry_budget="forever"`}, ""},
		{"s3://b?region=a&region=b", []string{"region given 2 times"}, ""},
		{"s3://b?region=", []string{"region is empty"}, ""},
		{"s3://b?endpoint=ftp://x", []string{`scheme "ftp"`}, ""},
		{"s3://b?endpoint=host/path", []string{"no path"}, ""},
		{"s3://b?endpoint=http://h:1&insecure=false", []string{"contradicts insecure=false"}, ""},
		{"s3://b?part_size=6GiB", []string{"5MiB to 5GiB"}, ""},
		{"s3://b?part_size=lots", []string{"not a size"}, ""},
		{"s3://b?retry_budget=-1s", []string{"negative"}, ""},
		{"s3://b?%zz=1", []string{"query"}, ""},
	} {
		_, err := ParseS3URL(tc.url)
		if err == nil {
			t.Errorf("%s: no error", tc.url)
			continue
		}
		msg := err.Error()
		for _, w := range append(tc.want, "want a local directory") {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error lacks %q:\n%s", tc.url, w, msg)
			}
		}
		if tc.hide != "" && strings.Contains(msg, tc.hide) {
			t.Errorf("%s: error shows %q:\n%s", tc.url, tc.hide, msg)
		}
	}
}

func TestOpenDir(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{
		filepath.Join(dir, "plain"),
		"file://" + filepath.ToSlash(filepath.Join(dir, "url")),
		"file://localhost" + filepath.ToSlash(filepath.Join(dir, "local")),
		filepath.Join(dir, "odd?name=1"), // a plain path is taken literally
	} {
		b, err := Open(t.Context(), u)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		d, ok := b.(*Dir)
		if !ok || !strings.HasPrefix(d.Root, dir) {
			t.Errorf("%s: got %T %+v", u, b, b)
		}
	}
	t.Chdir(dir)
	b, err := Open(t.Context(), "rel/dir")
	if err != nil || b.(*Dir).Root != filepath.Join(dir, "rel", "dir") {
		t.Errorf("relative path: %+v, %v", b, err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want []string
	}{
		{"", []string{"no storage URL", "s3://BUCKET"}},
		{"file:rel/dir", []string{"absolute path"}},
		{"file://host/dir", []string{`host "host"`}},
		{"file:///dir?x=1#f", []string{"takes no options", "takes no fragment"}},
		{"http://127.0.0.1:7070/b", []string{`unsupported storage URL scheme "http"`, "s3://BUCKET"}},
		{"gs://bucket", []string{`scheme "gs"`}},
		{"s3://b?bogus=1", []string{`unknown option "bogus"`}},
	} {
		_, err := Open(t.Context(), tc.url)
		if err == nil {
			t.Errorf("%q: no error", tc.url)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error lacks %q: %v", tc.url, w, err)
			}
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "5242880": 5 << 20, "5MiB": 5 << 20, "5mb": 5 << 20, "5M": 5 << 20,
		"2KiB": 2048, "1GiB": 1 << 30, "7B": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "99999999999999999999", "17179869184GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}
