package objstore

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// ErrVerify is wrapped by Download when the content does not match the object's size,
// ETag (an MD5) or checksums.
var ErrVerify = errors.New("downloaded content does not match the object")

// copyBuf is the one buffer a download uses: memory stays flat whatever the object size.
const copyBuf = 256 << 10

// Download streams the object obj (as returned by Stat or List) into f, an empty file open
// for writing, verifying its size, its ETag when that is an MD5, and every full-object checksum
// the server keeps. A transient failure (network error, 5xx, a connection closed early) is
// retried with exponential backoff (Config.Retry) and resumed where it stopped with a Range
// request that only matches the same ETag, so an object replaced meanwhile is an error rather
// than a spliced file. Memory use is one 256 KiB buffer. Cancelling ctx stops the download.
func (c *Client) Download(ctx context.Context, obj Object, f *os.File) error {
	v := newVerifier(obj)
	var written int64
	retry := c.cfg.Retry
	for attempt := 1; ; attempt++ {
		err := c.downloadFrom(ctx, obj, f, &written, v)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("download %s: %w", c.name(obj), ctx.Err())
		}
		if !transient(err) || attempt >= retry.Attempts {
			if transient(err) {
				return fmt.Errorf("download %s: giving up after %d attempts: %w", c.name(obj), attempt, err)
			}
			return err
		}
		wait := retry.delay(attempt)
		c.log.Warn("object download interrupted; resuming", "object", c.name(obj), "at_byte", written,
			"of", obj.Size, "attempt", attempt, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("download %s: %w", c.name(obj), ctx.Err())
		case <-t.C:
		}
	}
	return v.check(c.name(obj))
}

func (c *Client) name(obj Object) string { return c.scheme + "://" + obj.Bucket + "/" + obj.Key }

// downloadFrom does one GET from *written to the end, advancing *written as bytes land in f.
func (c *Client) downloadFrom(ctx context.Context, obj Object, f *os.File, written *int64, v *verifier) error {
	if *written == obj.Size && obj.Size > 0 {
		return nil
	}
	var opts minio.GetObjectOptions
	if obj.ETag != "" {
		if err := opts.SetMatchETag(obj.ETag); err != nil {
			return err
		}
	}
	if *written > 0 {
		if err := opts.SetRange(*written, 0); err != nil {
			return err
		}
	}
	body, _, _, err := c.core.GetObject(ctx, obj.Bucket, obj.Key, opts)
	if err != nil {
		switch minio.ToErrorResponse(err).StatusCode {
		case http.StatusPreconditionFailed:
			return fmt.Errorf("download %s: the object changed while it was downloaded (ETag is no longer %s); deploy again", c.name(obj), obj.ETag)
		case http.StatusRequestedRangeNotSatisfiable:
			// Resuming past the real end: the object is shorter than its listing said.
			return fmt.Errorf("download %s: %w: got %d bytes, want %d", c.name(obj), ErrVerify, *written, obj.Size)
		}
		return &transferError{c.wrap(err, "download", obj.Bucket, obj.Key), err}
	}
	defer body.Close()
	buf := make([]byte, copyBuf)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if *written+int64(n) > obj.Size {
				return fmt.Errorf("download %s: %w: more than the %d bytes announced", c.name(obj), ErrVerify, obj.Size)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return fmt.Errorf("download %s: write: %w", c.name(obj), err)
			}
			v.Write(buf[:n])
			*written += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &transferError{fmt.Errorf("download %s: read at byte %d: %w", c.name(obj), *written, rerr), rerr}
		}
	}
	if *written < obj.Size {
		return &transferError{fmt.Errorf("download %s: connection closed after %d of %d bytes", c.name(obj), *written, obj.Size), io.ErrUnexpectedEOF}
	}
	return nil
}

// transferError marks a failure of the transfer itself; transient decides whether to retry.
type transferError struct {
	msg   error // the message shown
	cause error // the client's error, for classification
}

func (e *transferError) Error() string { return e.msg.Error() }
func (e *transferError) Unwrap() error { return e.msg }

// transient reports whether retrying could help: network failures, short reads and server
// errors (5xx, throttling) do; refusals (4xx: missing, denied) and verification failures don't.
func transient(err error) bool {
	var te *transferError
	if !errors.As(err, &te) {
		return false
	}
	if errors.Is(te.cause, context.Canceled) || errors.Is(te.cause, context.DeadlineExceeded) {
		return false
	}
	resp := minio.ToErrorResponse(te.cause)
	if resp.Code == "" && resp.StatusCode == 0 {
		return true // no S3 answer at all: the network or the server process failed
	}
	switch resp.Code {
	case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "XMinioServerNotInitialized":
		return true
	}
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}

// verifier hashes the stream with every algorithm the object can be checked against.
type verifier struct {
	obj    Object
	n      int64
	md5    hash.Hash // nil when the ETag is not an MD5
	hashes map[string]hash.Hash
}

func newVerifier(obj Object) *verifier {
	v := &verifier{obj: obj, hashes: map[string]hash.Hash{}}
	if etagIsMD5(obj.ETag) {
		v.md5 = md5.New()
	}
	for alg := range obj.Checksums {
		switch alg {
		case "SHA256":
			v.hashes[alg] = sha256.New()
		case "SHA1":
			v.hashes[alg] = sha1.New()
		case "CRC32":
			v.hashes[alg] = crc32.NewIEEE()
		case "CRC32C":
			v.hashes[alg] = crc32.New(crc32.MakeTable(crc32.Castagnoli))
		case "CRC64ECMA":
			v.hashes[alg] = crc64.New(crc64.MakeTable(crc64.ECMA))
		}
	}
	return v
}

// etagIsMD5: a single-part upload's ETag is the hex MD5 of the content; multipart ETags carry
// a "-parts" suffix and encrypted objects' ETags are opaque (their Stat has no MD5 form anyway).
func etagIsMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

func (v *verifier) Write(p []byte) {
	v.n += int64(len(p))
	if v.md5 != nil {
		v.md5.Write(p)
	}
	for _, h := range v.hashes {
		h.Write(p)
	}
}

func (v *verifier) check(name string) error {
	if v.n != v.obj.Size {
		return fmt.Errorf("download %s: %w: got %d bytes, want %d", name, ErrVerify, v.n, v.obj.Size)
	}
	if v.md5 != nil {
		if got := hex.EncodeToString(v.md5.Sum(nil)); !strings.EqualFold(got, v.obj.ETag) {
			return fmt.Errorf("download %s: %w: MD5 %s, ETag %s", name, ErrVerify, got, v.obj.ETag)
		}
	}
	for alg, h := range v.hashes {
		want := v.obj.Checksums[alg]
		var got string
		switch alg {
		case "CRC64ECMA": // OSS sends it as a decimal uint64
			got = strconv.FormatUint(binary.BigEndian.Uint64(h.Sum(nil)), 10)
		default: // S3 checksums are base64 of the big-endian digest
			got = base64.StdEncoding.EncodeToString(h.Sum(nil))
		}
		if got != want {
			return fmt.Errorf("download %s: %w: %s checksum %s, want %s", name, ErrVerify, alg, got, want)
		}
	}
	return nil
}
