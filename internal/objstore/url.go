package objstore

import (
	"fmt"
	"strings"
)

// Location is a parsed oss:// or s3:// URL.
type Location struct {
	Scheme string // "oss" or "s3"
	Bucket string
	Key    string // may be empty (the whole bucket) or end in "/" (a prefix)
}

// String is the URL form, scheme://bucket/key.
func (l Location) String() string { return l.Scheme + "://" + l.Bucket + "/" + l.Key }

// IsPrefix reports whether the location names a "directory": an empty key or one ending in "/".
func (l Location) IsPrefix() bool { return l.Key == "" || strings.HasSuffix(l.Key, "/") }

// ParseURL parses "oss://bucket/key" or "s3://bucket/key". Query strings, fragments and user
// info are refused: credentials belong in the configuration, never in a model path.
func ParseURL(raw string) (Location, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "oss" && scheme != "s3") {
		return Location{}, fmt.Errorf("object URL: want oss://bucket/key or s3://bucket/key")
	}
	if strings.ContainsAny(rest, "?#") {
		return Location{}, fmt.Errorf("object URL %s://…: query strings and fragments are not allowed", scheme)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		return Location{}, fmt.Errorf("object URL %s://…: credentials in the URL are not allowed; configure them in easd (OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET)", scheme)
	}
	if err := checkBucket(bucket); err != nil {
		return Location{}, fmt.Errorf("object URL %s://%s: %w", scheme, bucket, err)
	}
	if strings.HasPrefix(key, "/") || strings.Contains("/"+key, "//") {
		return Location{}, fmt.Errorf("object URL %s://%s/%s: empty path element in key", scheme, bucket, key)
	}
	return Location{Scheme: scheme, Bucket: bucket, Key: key}, nil
}

// checkBucket applies the S3/OSS bucket naming rules: 3-63 characters of lowercase letters,
// digits, '-' and '.', starting and ending with a letter or digit.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q: want 3 to 63 characters", b)
	}
	for i, c := range b {
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && c != '-' && c != '.' || (i == 0 || i == len(b)-1) && !alnum {
			return fmt.Errorf("bucket name %q: want lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", b)
		}
	}
	return nil
}
