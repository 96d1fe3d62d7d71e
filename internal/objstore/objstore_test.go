package objstore

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestParseURL(t *testing.T) {
	ok := []struct {
		in     string
		want   Location
		prefix bool
	}{
		{"oss://bucket/models/m.onnx", Location{"oss", "bucket", "models/m.onnx"}, false},
		{"OSS://bucket/models/", Location{"oss", "bucket", "models/"}, true},
		{"s3://my.bucket-1", Location{"s3", "my.bucket-1", ""}, true},
		{"s3://my.bucket-1/", Location{"s3", "my.bucket-1", ""}, true},
	}
	for _, tc := range ok {
		got, err := ParseURL(tc.in)
		if err != nil || got != tc.want || got.IsPrefix() != tc.prefix {
			t.Errorf("ParseURL(%q) = %+v (prefix %v), %v; want %+v", tc.in, got, got.IsPrefix(), err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{"http://bucket/k", "want oss://bucket/key"},
		{"oss://ab/k", "3 to 63 characters"},
		{"oss://Bucket/k", "lowercase letters"},
		{"oss://-bucket/k", "starting and ending"},
		{"oss://AK:s3cr3tvalue@bucket/k", "credentials in the URL are not allowed"},
		{"oss://bucket/k?Signature=x", "query strings"},
		{"oss://bucket//k", "empty path element"},
	}
	for _, tc := range bad {
		_, err := ParseURL(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q): err = %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3tvalue") {
			t.Errorf("ParseURL(%q): error repeats the secret: %v", tc.in, err)
		}
	}
}

func TestEndpointAndAddressing(t *testing.T) {
	cases := []struct {
		endpoint, addressing string
		host                 string
		secure               bool
		lookup               minio.BucketLookupType
		region               string
	}{
		{"", "", "s3.amazonaws.com", true, minio.BucketLookupDNS, ""},
		{"oss-cn-hangzhou.aliyuncs.com", "", "oss-cn-hangzhou.aliyuncs.com", true, minio.BucketLookupDNS, "oss-cn-hangzhou"},
		{"https://oss-cn-shanghai-internal.aliyuncs.com", "auto", "oss-cn-shanghai-internal.aliyuncs.com", true, minio.BucketLookupDNS, "oss-cn-shanghai"},
		{"http://127.0.0.1:9000", "", "127.0.0.1:9000", false, minio.BucketLookupPath, ""},
		{"minio.internal:9000", "virtual", "minio.internal:9000", true, minio.BucketLookupDNS, ""},
		{"oss-cn-beijing.aliyuncs.com", "path", "oss-cn-beijing.aliyuncs.com", true, minio.BucketLookupPath, "oss-cn-beijing"},
	}
	for _, tc := range cases {
		host, secure, err := parseEndpoint(tc.endpoint)
		if err != nil || host != tc.host || secure != tc.secure {
			t.Errorf("parseEndpoint(%q) = %q, %v, %v", tc.endpoint, host, secure, err)
		}
		lookup, err := bucketLookup(tc.addressing, host)
		if err != nil || lookup != tc.lookup {
			t.Errorf("bucketLookup(%q, %q) = %v, %v; want %v", tc.addressing, host, lookup, err, tc.lookup)
		}
		if r := ossRegion(host); r != tc.region {
			t.Errorf("ossRegion(%q) = %q, want %q", host, r, tc.region)
		}
	}
	for _, bad := range []string{"ftp://host", "http://user:pw@host", "http://host/path", "http://host?x=1"} {
		if _, _, err := parseEndpoint(bad); err == nil || strings.Contains(err.Error(), "pw@") {
			t.Errorf("parseEndpoint(%q): err = %v", bad, err)
		}
	}
	if _, err := bucketLookup("sideways", "h"); err == nil || !strings.Contains(err.Error(), "want auto, path or virtual") {
		t.Errorf("bad addressing: %v", err)
	}
}

func TestConfigHidesSecrets(t *testing.T) {
	cfg := Config{Endpoint: "oss-cn-hangzhou.aliyuncs.com", AccessKeyID: "LTAI5tExampleKeyId", SecretAccessKey: "TopSecretValue", SessionToken: "TokenValue"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "store", cfg)
	for _, s := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v %#v", cfg, cfg), buf.String()} {
		if strings.Contains(s, "TopSecretValue") || strings.Contains(s, "TokenValue") || strings.Contains(s, "LTAI5tExampleKeyId") {
			t.Errorf("config shows a secret: %s", s)
		}
	}
	if !strings.Contains(cfg.String(), "LTAI****") {
		t.Errorf("String() = %q, want the key ID's first characters", cfg.String())
	}
}

func TestVerifier(t *testing.T) {
	data := []byte("model bytes")
	md := md5.Sum(data)
	sh := sha256.Sum256(data)
	crc := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	crcb := []byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)}
	ossCRC := strconv.FormatUint(crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)), 10)
	good := Object{Key: "m", Size: int64(len(data)), ETag: strings.ToUpper(hex.EncodeToString(md[:])), Checksums: map[string]string{
		"SHA256": base64.StdEncoding.EncodeToString(sh[:]), "CRC32C": base64.StdEncoding.EncodeToString(crcb), "CRC64ECMA": ossCRC,
	}}
	cases := []struct {
		name string
		obj  func(o Object) Object
		want string
	}{
		{"all match (OSS upper-case ETag)", func(o Object) Object { return o }, ""},
		{"multipart ETag not checked", func(o Object) Object { o.ETag = "abc-3"; return o }, ""},
		{"size", func(o Object) Object { o.Size++; return o }, "got 11 bytes, want 12"},
		{"md5", func(o Object) Object { o.ETag = strings.Repeat("0", 32); return o }, "MD5"},
		{"sha256", func(o Object) Object {
			o.Checksums = map[string]string{"SHA256": base64.StdEncoding.EncodeToString(make([]byte, 32))}
			return o
		}, "SHA256 checksum"},
		{"oss crc64", func(o Object) Object { o.Checksums = map[string]string{"CRC64ECMA": "1"}; return o }, "CRC64ECMA checksum"},
	}
	for _, tc := range cases {
		v := newVerifier(tc.obj(good))
		v.Write(data)
		err := v.check("oss://b/m")
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrVerify)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestTransient(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&transferError{errors.New("x"), io.ErrUnexpectedEOF}, true},
		{&transferError{errors.New("x"), minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}}, true},
		{&transferError{errors.New("x"), minio.ErrorResponse{Code: "InternalError", StatusCode: 500}}, true},
		{&transferError{errors.New("x"), minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}}, false},
		{&transferError{errors.New("x"), minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}}, false},
		{errors.New("verification failed"), false},
	}
	for i, tc := range cases {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("case %d (%v): transient = %v", i, tc.err, got)
		}
	}
	r := Retry{}.withDefaults()
	if r.delay(1) != r.Base || r.delay(2) != 2*r.Base || r.delay(30) != r.Max {
		t.Errorf("backoff delays %v %v %v", r.delay(1), r.delay(2), r.delay(30))
	}
}
