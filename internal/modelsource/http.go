package modelsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// fetchHTTP streams the URL into tree; an archive (by name) is first saved to a temporary file
// in scratch, then unpacked into tree and removed.
func fetchHTTP(ctx context.Context, rawURL, source, scratch, tree string, lim *limits, opts Options) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("model_path %s: %w", source, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("model_path %s: %w", source, err)
	}
	opts.Logger.Info("downloading model", "source", source)
	resp, err := opts.HTTPClient.Do(req)
	if err != nil {
		// The url.Error text contains the URL, credentials included: report the redacted one.
		if ctx.Err() != nil {
			return fmt.Errorf("download %s: %w", source, ctx.Err())
		}
		return fmt.Errorf("download %s: %s", source, redactErr(err, rawURL, source))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		msg := strings.TrimSpace(string(snippet))
		if msg != "" {
			return fmt.Errorf("download %s: server answered %q: %q", source, resp.Status, msg)
		}
		return fmt.Errorf("download %s: server answered %q", source, resp.Status)
	}
	if resp.ContentLength > lim.maxBytes {
		return fmt.Errorf("download %s: size %d bytes exceeds the limit of %d bytes", source, resp.ContentLength, lim.maxBytes)
	}

	name := urlFileName(u)
	kind := archiveKind(name)
	if kind == "" {
		// A plain file: stream it straight into the tree.
		if err := lim.addEntry(name); err != nil {
			return err
		}
		return writeFile(ctx, filepath.Join(tree, name), resp.Body, 0o644, lim, name)
	}
	tmp, err := os.CreateTemp(scratch, "download-*"+archiveSuffix(name))
	if err != nil {
		return fmt.Errorf("download %s: %w", source, err)
	}
	archive := tmp.Name()
	defer os.Remove(archive)
	// The compressed download counts against its own budget; unpacking counts the real bytes.
	dl := &limits{maxBytes: lim.maxBytes, maxFiles: 1}
	err = copyCapped(ctx, tmp, resp.Body, dl, name)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", source, err)
	}
	if resp.ContentLength >= 0 && dl.bytes != resp.ContentLength {
		return fmt.Errorf("download %s: got %d of %d bytes", source, dl.bytes, resp.ContentLength)
	}
	return unpack(ctx, archive, name, kind, tree, lim)
}

// redactErr drops the URL that *url.Error repeats, since it may carry credentials.
func redactErr(err error, rawURL, source string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.ReplaceAll(err.Error(), rawURL, source)
}
