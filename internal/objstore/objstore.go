// Package objstore is OpenEAS's client for S3-compatible object storage (Alibaba OSS, AWS S3,
// MinIO): configuration (endpoint, credentials, addressing style), object URLs, and the few
// operations the platform needs — stat, list, a streamed, verified and resumable download, and
// uploads. It wraps github.com/minio/minio-go/v7.
//
// Secrets never leave a Config through its String method, and no error this package returns
// contains the secret key or session token.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Addressing styles for Config.Addressing.
const (
	// AddressingAuto uses virtual-host style ("bucket.endpoint/key") for Alibaba OSS and AWS
	// endpoints, which require it, and path style ("endpoint/bucket/key") for every other
	// endpoint (MinIO, custom gateways, IP addresses), which rarely has wildcard DNS.
	AddressingAuto    = "auto"
	AddressingPath    = "path"
	AddressingVirtual = "virtual"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound: the bucket or the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAccessDenied: the credentials are wrong or lack permission.
	ErrAccessDenied = errors.New("access denied")
)

// Config says where an object store is and how to sign requests. The zero value talks to
// AWS S3 anonymously.
type Config struct {
	// Endpoint is "host[:port]" (HTTPS) or "http(s)://host[:port]". Empty means s3.amazonaws.com.
	Endpoint string
	// AccessKeyID and SecretAccessKey sign requests; both empty means anonymous requests.
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken is for temporary (STS) credentials.
	SessionToken string
	// Region for signing; empty means derived from an OSS endpoint, else asked from the server.
	Region string
	// Addressing is AddressingAuto (default), AddressingPath or AddressingVirtual.
	Addressing string
	// Transport, when set, carries every request (tests count requests with it).
	Transport http.RoundTripper
	// Retry governs resuming interrupted downloads; the zero value means DefaultRetry.
	Retry Retry
	// Logger receives retry notices; nil discards them.
	Logger *slog.Logger
	// Scheme names objects in messages ("oss" gives oss://bucket/key); default "s3".
	Scheme string
}

// String describes the config without its secrets, e.g. for logs.
func (c Config) String() string {
	ep := c.Endpoint
	if ep == "" {
		ep = "s3.amazonaws.com"
	}
	cred := "anonymous"
	if c.AccessKeyID != "" {
		cred = "access key " + maskID(c.AccessKeyID)
	}
	return fmt.Sprintf("endpoint %s (%s)", ep, cred)
}

// GoString keeps secrets out of %#v as well.
func (c Config) GoString() string { return "objstore.Config{" + c.String() + "}" }

// LogValue keeps secrets out of structured logs too.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// maskID shows only the first 4 characters of an access key ID: enough to tell keys apart.
func maskID(id string) string {
	if len(id) <= 4 {
		return "****"
	}
	return id[:4] + "****"
}

// Retry is the backoff policy for transient failures while downloading: attempt n (from 1)
// waits Base·2^(n-1), at most Max, before resuming where the previous attempt stopped.
type Retry struct {
	Attempts int           // total tries, first included; default 8
	Base     time.Duration // default 250ms
	Max      time.Duration // default 8s
}

// DefaultRetry rides out a server restart of some 30 seconds.
var DefaultRetry = Retry{Attempts: 8, Base: 250 * time.Millisecond, Max: 8 * time.Second}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetry.Attempts
	}
	if r.Base <= 0 {
		r.Base = DefaultRetry.Base
	}
	if r.Max <= 0 {
		r.Max = DefaultRetry.Max
	}
	return r
}

func (r Retry) delay(attempt int) time.Duration {
	d := r.Base
	for i := 1; i < attempt && d < r.Max; i++ {
		d *= 2
	}
	return min(d, r.Max)
}

// Client talks to one endpoint with one set of credentials. It is safe for concurrent use.
type Client struct {
	cfg    Config
	mc     *minio.Client
	core   minio.Core
	host   string // endpoint host[:port], for messages
	scheme string // for messages
	log    *slog.Logger
}

// New makes a Client; it does not contact the server.
func New(cfg Config) (*Client, error) {
	cfg.Retry = cfg.Retry.withDefaults()
	host, secure, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	lookup, err := bucketLookup(cfg.Addressing, host)
	if err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		region = ossRegion(host)
	}
	opts := &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Secure:       secure,
		Region:       region,
		BucketLookup: lookup,
		Transport:    cfg.Transport,
		// Trailing checksums carry the full-object CRC32C of uploads (see uploadChecksum).
		TrailingHeaders: !isOSS(host),
	}
	if opts.Transport == nil {
		tr, err := minio.DefaultTransport(secure)
		if err != nil {
			return nil, fmt.Errorf("object store %s: %w", host, err)
		}
		opts.Transport = tr
	}
	mc, err := minio.New(host, opts)
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", host, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	scheme := cfg.Scheme
	if scheme == "" {
		scheme = "s3"
	}
	return &Client{cfg: cfg, mc: mc, core: minio.Core{Client: mc}, host: host, scheme: scheme, log: log}, nil
}

// Endpoint is the host[:port] the client talks to.
func (c *Client) Endpoint() string { return c.host }

// parseEndpoint splits "http(s)://host[:port]" or "host[:port]" into host and TLS use.
func parseEndpoint(ep string) (host string, secure bool, err error) {
	ep = strings.TrimSpace(ep)
	if ep == "" {
		return "s3.amazonaws.com", true, nil
	}
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("object store endpoint %q: want host[:port] or http(s)://host[:port]", ep)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("object store endpoint %q: scheme must be http or https", ep)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("object store endpoint %q: want host[:port] or http(s)://host[:port], nothing else", u.Redacted())
	}
	return u.Host, u.Scheme == "https", nil
}

func bucketLookup(style, host string) (minio.BucketLookupType, error) {
	switch strings.ToLower(style) {
	case "", AddressingAuto:
		h := hostOnly(host)
		if strings.HasSuffix(h, ".aliyuncs.com") || strings.HasSuffix(h, ".amazonaws.com") {
			return minio.BucketLookupDNS, nil
		}
		return minio.BucketLookupPath, nil
	case AddressingPath:
		return minio.BucketLookupPath, nil
	case AddressingVirtual:
		return minio.BucketLookupDNS, nil
	}
	return 0, fmt.Errorf("object store addressing %q: want auto, path or virtual", style)
}

// isOSS reports an Alibaba OSS endpoint, which speaks S3 but not its newer checksum headers.
func isOSS(host string) bool { return strings.HasSuffix(hostOnly(host), ".aliyuncs.com") }

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(hostport)
}

// ossRegion derives the signing region from an Alibaba OSS endpoint such as
// oss-cn-hangzhou.aliyuncs.com or oss-cn-hangzhou-internal.aliyuncs.com ("oss-cn-hangzhou").
// Other endpoints get "" (the client then asks the server, or uses us-east-1).
func ossRegion(host string) string {
	h := hostOnly(host)
	if !strings.HasSuffix(h, ".aliyuncs.com") {
		return ""
	}
	first, _, _ := strings.Cut(h, ".")
	if !strings.HasPrefix(first, "oss-") {
		return ""
	}
	return strings.TrimSuffix(first, "-internal")
}

// Object is the identity and integrity data of one stored object.
type Object struct {
	Bucket string
	Key    string
	Size   int64
	// ETag without quotes. For single-part uploads without KMS encryption it is the MD5 of
	// the content; multipart ETags end in "-<parts>".
	ETag string
	// Checksums the server keeps for the whole object, by algorithm ("SHA256", "SHA1",
	// "CRC32", "CRC32C", "CRC64ECMA"), in the server's encoding (base64 for S3, decimal for
	// OSS's CRC64). Composite (per-part) checksums are left out: they cannot be checked
	// over the whole stream.
	Checksums map[string]string
	// Meta holds the user metadata (x-amz-meta-*), keys canonicalized.
	Meta map[string]string
}

// Stat returns the object's identity (a HEAD request).
func (c *Client) Stat(ctx context.Context, bucket, key string) (Object, error) {
	info, err := c.mc.StatObject(ctx, bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return Object{}, c.wrap(err, "stat", bucket, key)
	}
	return objectOf(bucket, info), nil
}

func objectOf(bucket string, info minio.ObjectInfo) Object {
	o := Object{Bucket: bucket, Key: info.Key, Size: info.Size, ETag: strings.Trim(info.ETag, `"`)}
	add := func(alg, v string) {
		if v == "" || strings.Contains(v, "-") || strings.EqualFold(info.ChecksumMode, "COMPOSITE") {
			return
		}
		if o.Checksums == nil {
			o.Checksums = map[string]string{}
		}
		o.Checksums[alg] = v
	}
	add("SHA256", info.ChecksumSHA256)
	add("SHA1", info.ChecksumSHA1)
	add("CRC32", info.ChecksumCRC32)
	add("CRC32C", info.ChecksumCRC32C)
	// Alibaba OSS sends the CRC-64/ECMA of every object in its own header.
	if v := info.Metadata.Get("X-Oss-Hash-Crc64ecma"); v != "" {
		if o.Checksums == nil {
			o.Checksums = map[string]string{}
		}
		o.Checksums["CRC64ECMA"] = v
	}
	for k, v := range info.UserMetadata {
		if o.Meta == nil {
			o.Meta = map[string]string{}
		}
		o.Meta[http.CanonicalHeaderKey(k)] = v
	}
	return o
}

// List returns every object whose key starts with prefix, in key order. Keys ending in "/"
// with no content (folder markers made by consoles) are skipped.
func (c *Client) List(ctx context.Context, bucket, prefix string) ([]Object, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lister goroutine when we return early
	var out []Object
	for info := range c.mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return nil, c.wrap(info.Err, "list", bucket, prefix)
		}
		if strings.HasSuffix(info.Key, "/") && info.Size == 0 {
			continue
		}
		out = append(out, objectOf(bucket, info))
	}
	return out, nil
}

// EnsureBucket creates the bucket when it does not exist.
func (c *Client) EnsureBucket(ctx context.Context, bucket string) error {
	ok, err := c.mc.BucketExists(ctx, bucket)
	if err != nil {
		return c.wrap(err, "check bucket", bucket, "")
	}
	if ok {
		return nil
	}
	if err := c.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: c.cfg.Region}); err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "BucketAlreadyOwnedByYou" {
			return nil // created concurrently
		}
		return c.wrap(err, "create bucket", bucket, "")
	}
	return nil
}

// wrap turns a client error into one that names the operation and object, maps well-known
// S3 codes onto the sentinels, and never repeats request URLs (which could carry signatures).
func (c *Client) wrap(err error, op, bucket, key string) error {
	where := c.scheme + "://" + bucket
	if key != "" {
		where += "/" + key
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, where, err)
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey":
		return fmt.Errorf("%s %s at %s: %w: no such object", op, where, c.host, ErrNotFound)
	case "NoSuchBucket":
		return fmt.Errorf("%s %s at %s: %w: bucket %q does not exist", op, where, c.host, ErrNotFound, bucket)
	case "InvalidAccessKeyId":
		return fmt.Errorf("%s %s at %s: %w: the access key ID is not known to the server", op, where, c.host, ErrAccessDenied)
	case "SignatureDoesNotMatch":
		return fmt.Errorf("%s %s at %s: %w: the secret access key is wrong (signature does not match)", op, where, c.host, ErrAccessDenied)
	case "AccessDenied", "AllAccessDisabled", "InvalidToken", "ExpiredToken":
		return fmt.Errorf("%s %s at %s: %w (%s)", op, where, c.host, ErrAccessDenied, resp.Code)
	case "":
		// Not an S3 error answer: a network failure. *url.Error repeats the URL; drop it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s at %s: %v", op, where, c.host, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s %s at %s: %w: %s", op, where, c.host, ErrNotFound, resp.Code)
	}
	return fmt.Errorf("%s %s at %s: server answered %s: %s", op, where, c.host, resp.Code, resp.Message)
}
