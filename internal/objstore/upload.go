package objstore

import (
	"context"
	"io"

	"github.com/minio/minio-go/v7"
)

// partSize bounds upload memory: minio-go buffers at most one part per thread.
const partSize = 16 << 20

// Upload puts the local file path at bucket/key with the given user metadata and returns the
// stored object's identity. Files over 16 MiB go up in 16 MiB parts, one at a time.
func (c *Client) Upload(ctx context.Context, bucket, key, path string, meta map[string]string) (Object, error) {
	_, err := c.mc.FPutObject(ctx, bucket, key, path, minio.PutObjectOptions{
		UserMetadata: meta, PartSize: partSize, NumThreads: 1,
		ContentType: "application/octet-stream", Checksum: c.uploadChecksum(),
	})
	if err != nil {
		return Object{}, c.wrap(err, "upload", bucket, key)
	}
	return c.Stat(ctx, bucket, key)
}

// PutStream uploads r, whose size is unknown, at bucket/key (16 MiB parts, one buffered at a time).
func (c *Client) PutStream(ctx context.Context, bucket, key string, r io.Reader, meta map[string]string) error {
	_, err := c.mc.PutObject(ctx, bucket, key, r, -1, minio.PutObjectOptions{
		UserMetadata: meta, PartSize: partSize, NumThreads: 1,
		ContentType: "application/octet-stream", Checksum: c.uploadChecksum(),
	})
	if err != nil {
		return c.wrap(err, "upload", bucket, key)
	}
	return nil
}

// uploadChecksum asks for a full-object CRC32C, which downloads can verify even for multipart
// uploads (whose ETag is no MD5). Alibaba OSS keeps its own CRC-64 of every object instead and
// is not sent the S3 checksum headers.
func (c *Client) uploadChecksum() minio.ChecksumType {
	if isOSS(c.host) {
		return minio.ChecksumNone
	}
	return minio.ChecksumFullObjectCRC32C
}
