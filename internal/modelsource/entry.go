package modelsource

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ModelExts are the file extensions ResolveEntry recognises as model files when none are given.
var ModelExts = []string{".onnx", ".pt", ".pth", ".pb"}

// ResolveEntry returns the model file inside dir, slash-separated and relative to dir.
//
// With modelEntry set, that file must exist (a leading "./" or "/" is tolerated); this is how a
// user picks one model among several. Without it, the tree must hold exactly one file whose
// extension is in exts (ModelExts when exts is empty). Errors name the files that were found.
func ResolveEntry(dir, modelEntry string, exts []string) (string, error) {
	if len(exts) == 0 {
		exts = ModelExts
	}
	files, err := listFiles(dir)
	if err != nil {
		return "", err
	}
	var models []string
	for _, f := range files {
		ext := strings.ToLower(path.Ext(f))
		for _, e := range exts {
			if ext == strings.ToLower(e) {
				models = append(models, f)
				break
			}
		}
	}

	if modelEntry != "" {
		rel := path.Clean(strings.TrimPrefix(strings.ReplaceAll(modelEntry, "\\", "/"), "/"))
		if !filepath.IsLocal(filepath.FromSlash(rel)) {
			return "", fmt.Errorf("model_entry %q: must be a path inside the model", modelEntry)
		}
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		switch {
		case err == nil && info.Mode().IsRegular():
			return rel, nil
		case err == nil:
			return "", fmt.Errorf("model_entry %q: not a regular file", modelEntry)
		case errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("model_entry %q: no such file in the model; model files found: %s", modelEntry, listOrNone(models, files))
		default:
			return "", fmt.Errorf("model_entry %q: %w", modelEntry, err)
		}
	}

	switch len(models) {
	case 1:
		return models[0], nil
	case 0:
		return "", fmt.Errorf("no model file (%s) found in the model; files: %s", strings.Join(exts, ", "), listOrNone(files, nil))
	default:
		return "", fmt.Errorf("several model files found (%s): set model_entry to choose one", quoteList(models))
	}
}

func listOrNone(primary, fallback []string) string {
	if len(primary) > 0 {
		return quoteList(primary)
	}
	if len(fallback) > 0 {
		return "none; other files: " + quoteList(fallback)
	}
	return "none"
}

// quoteList shows at most 10 names, so an error about a huge tree stays readable.
func quoteList(names []string) string {
	const max = 10
	shown := names
	if len(shown) > max {
		shown = shown[:max]
	}
	q := make([]string, len(shown))
	for i, n := range shown {
		q[i] = fmt.Sprintf("%q", n)
	}
	s := strings.Join(q, ", ")
	if len(names) > max {
		s += fmt.Sprintf(" and %d more", len(names)-max)
	}
	return s
}
