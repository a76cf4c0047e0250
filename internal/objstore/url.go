package objstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// URLFormats is what Open accepts, for error messages and help texts.
const URLFormats = "a local directory (/abs/dir, rel/dir or file:///abs/dir) or " +
	"s3://BUCKET[/PREFIX][?endpoint=HOST:PORT&region=REGION&path_style=true|false&insecure=true|false" +
	"&create=true|false&part_size=BYTES&retry_budget=DURATION]"

// s3Keys are the query keys of an s3:// URL, with what each takes.
var s3Keys = map[string]string{
	"endpoint":     "HOST[:PORT] (or http://HOST:PORT, https://HOST:PORT)",
	"region":       "a region name such as us-east-1",
	"path_style":   "true or false",
	"insecure":     "true or false",
	"create":       "true or false",
	"part_size":    "bytes, at least 5MiB, such as 16777216 or 16MiB",
	"retry_budget": "a Go duration such as 30s, or 0 for no retries",
}

// Open opens the bucket a storage URL names:
//
//   - a plain path ("/var/lib/sluice", "data": anything without "://" that
//     does not start with "file:" or "s3:") or file:///abs/dir: a Dir, whose
//     directory is created if missing.
//   - s3://BUCKET[/PREFIX][?QUERY]: an S3 bucket, keys stored under PREFIX.
//     Credentials never go in the URL; they come from the environment
//     (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the
//     shared credentials file or IAM (see S3Config.AccessKey). QUERY, all
//     optional:
//     endpoint=HOST:PORT the server (default Amazon S3, s3.amazonaws.com);
//     http://HOST:PORT implies insecure=true, https:// insecure=false.
//     region=REGION (default AWS_REGION, AWS_DEFAULT_REGION, else asked of
//     the server).
//     path_style=true|false: path-style (http://host/bucket/key, what
//     self-hosted servers want) or virtual-host requests
//     (http://bucket.host/key); default: minio-go's choice (virtual-host
//     for Amazon S3, path style elsewhere).
//     insecure=true: plain HTTP instead of HTTPS (default false).
//     create=true: create the bucket if it does not exist (default false:
//     a missing bucket is an error).
//     part_size=BYTES: multipart part size (default 16MiB; KiB, MiB and
//     GiB suffixes allowed; at least 5MiB).
//     retry_budget=DURATION: time each call may spend retrying transient
//     failures (default 30s; 0 disables retries).
//
// Example: s3://sluice/prod?endpoint=127.0.0.1:7070&region=us-east-1&path_style=true&insecure=true
//
// Every problem with the URL is reported at once (errors.Join); an unknown
// query key is an error, not ignored. For an S3 URL, Open checks that the
// bucket exists (retrying transient failures within the retry budget).
func Open(ctx context.Context, rawURL string) (Bucket, error) {
	if isS3URL(rawURL) {
		cfg, err := ParseS3URL(rawURL)
		if err != nil {
			return nil, err
		}
		return NewS3(ctx, cfg)
	}
	dir, err := parseDirURL(rawURL)
	if err != nil {
		return nil, err
	}
	return NewDir(dir)
}

func isS3URL(s string) bool { return strings.HasPrefix(strings.ToLower(s), "s3:") }

// parseDirURL returns the directory a plain path or file:// URL names.
func parseDirURL(raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("no storage URL: want %s", URLFormats)
	}
	lower := strings.ToLower(raw)
	if !strings.Contains(raw, "://") && !strings.HasPrefix(lower, "file:") {
		return raw, nil // a plain path, taken literally ('?' and '%' included)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("invalid storage URL %q: %v; want %s", raw, err, URLFormats)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("unsupported storage URL scheme %q in %q: want %s", u.Scheme, raw, URLFormats)
	}
	var errs []error
	if u.Opaque != "" || !filepath.IsAbs(filepath.FromSlash(u.Path)) {
		errs = append(errs, errors.New("a file URL needs an absolute path, as file:///abs/dir (or give the path itself, relative or absolute)"))
	}
	if u.Host != "" && u.Host != "localhost" {
		errs = append(errs, fmt.Errorf("host %q: a file URL names a local directory, as file:///abs/dir", u.Host))
	}
	if u.User != nil {
		errs = append(errs, errors.New("a file URL takes no user"))
	}
	if u.RawQuery != "" || u.ForceQuery {
		errs = append(errs, fmt.Errorf("query %q: a file URL takes no options", u.RawQuery))
	}
	if u.Fragment != "" {
		errs = append(errs, fmt.Errorf("fragment %q: a file URL takes no fragment", u.Fragment))
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("invalid storage URL %q: %w", raw, errors.Join(errs...))
	}
	return filepath.FromSlash(u.Path), nil
}

// ParseS3URL turns an s3:// URL (see Open) into an S3Config, without
// connecting. Every problem is reported, joined.
func ParseS3URL(raw string) (S3Config, error) {
	var cfg S3Config
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL; it has no credentials to hide
		// since s3:// URLs take none.
		return cfg, fmt.Errorf("invalid storage URL: %v; want %s", err, URLFormats)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u.Scheme != "s3" {
		bad("scheme %q: want s3", u.Scheme)
	}
	if u.Opaque != "" {
		bad("want s3://BUCKET[/PREFIX], with two slashes")
	}
	hadUser := u.User != nil
	if hadUser {
		bad("credentials in the URL are not taken (URLs get logged): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment, or use ~/.aws/credentials or IAM")
		u.User = nil // keep the secret out of the error message
	}
	cfg.Bucket = u.Hostname()
	if u.Port() != "" {
		bad("port %q after the bucket name: the server goes in endpoint=HOST:PORT", u.Port())
	}
	cfg.Prefix = strings.Trim(u.Path, "/")
	if u.Fragment != "" {
		bad("fragment %q: an s3 URL takes none", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		bad("query %q: %v", u.RawQuery, err)
	}
	var keys []string
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	boolean := func(k, v string) bool {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("%s=%q: want true or false", k, v)
		}
		return b
	}
	insecureSet := false
	schemeInsecure := (*bool)(nil)
	for _, k := range keys {
		vs := q[k]
		what, known := s3Keys[k]
		if !known {
			bad("unknown option %q: known are %s", k, knownKeys())
			continue
		}
		if len(vs) > 1 {
			bad("%s given %d times", k, len(vs))
			continue
		}
		v := vs[0]
		if v == "" {
			bad("%s is empty: want %s", k, what)
			continue
		}
		switch k {
		case "endpoint":
			host := v
			if i := strings.Index(v, "://"); i >= 0 {
				scheme := strings.ToLower(v[:i])
				host = v[i+3:]
				switch scheme {
				case "http", "https":
					insecure := scheme == "http"
					schemeInsecure = &insecure
				default:
					bad("endpoint=%q: scheme %q, want http or https (or none)", v, scheme)
				}
			}
			host = strings.TrimSuffix(host, "/")
			if host == "" || strings.ContainsAny(host, "/?#@") {
				bad("endpoint=%q: want %s, no path", v, what)
			}
			cfg.Endpoint = host
		case "region":
			cfg.Region = v
		case "path_style":
			if boolean(k, v) {
				cfg.Addressing = AddressPath
			} else {
				cfg.Addressing = AddressVirtualHost
			}
		case "insecure":
			cfg.Insecure = boolean(k, v)
			insecureSet = true
		case "create":
			cfg.Create = boolean(k, v)
		case "part_size":
			n, err := parseSize(v)
			if err != nil {
				bad("part_size=%q: %v; want %s", v, err, what)
			} else if n < MinPartSize || n > MaxPartSize {
				bad("part_size=%q: S3 wants parts of 5MiB to 5GiB", v)
			} else {
				cfg.PartSize = n
			}
		case "retry_budget":
			d, err := time.ParseDuration(v)
			if v == "0" {
				d, err = 0, nil
			}
			switch {
			case err != nil:
				bad("retry_budget=%q: want %s", v, what)
			case d < 0:
				bad("retry_budget=%q: negative", v)
			case d == 0:
				cfg.RetryBudget = -1 // S3Config: negative is a single attempt
			default:
				cfg.RetryBudget = d
			}
		}
	}
	if schemeInsecure != nil {
		if insecureSet && cfg.Insecure != *schemeInsecure {
			bad("endpoint=%q contradicts insecure=%t", q.Get("endpoint"), cfg.Insecure)
		}
		cfg.Insecure = *schemeInsecure
	}
	if err := cfg.validate(); err != nil { // bucket name, prefix
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		shown := raw
		if hadUser {
			shown = u.String() // without the credentials
		}
		return S3Config{}, fmt.Errorf("invalid storage URL %q: %w\nwant %s", shown, errors.Join(errs...), URLFormats)
	}
	return cfg, nil
}

func knownKeys() string {
	var ks []string
	for k := range s3Keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix (KB,
// MB, GB, K, M, G taken as the same binary units).
func parseSize(s string) (uint64, error) {
	mult := uint64(1)
	up := strings.ToUpper(s)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(up, u.suffix) {
			up, mult = strings.TrimSuffix(up, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(up), 10, 64)
	if err != nil {
		return 0, errors.New("not a size")
	}
	if n > (1<<64-1)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}
