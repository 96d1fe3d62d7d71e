package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// readServiceFile reads a service.json and makes its relative local paths (model_path,
// warm_up_data_path) absolute against the file's own directory: easd cannot know where a
// relative path was written, and this is what a user of `eascmd create dir/service.json` means.
// A file that is not a JSON object is sent as it is, so easd reports what is wrong with it.
func readServiceFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read service file: %w", err)
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil {
		return data, nil
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("service file %s: %w", path, err)
	}
	changed := false
	for _, key := range []string{"model_path", "warm_up_data_path"} {
		var p string
		if raw, ok := doc[key]; !ok || json.Unmarshal(raw, &p) != nil || p == "" || strings.Contains(p, "://") || filepath.IsAbs(p) {
			continue
		}
		abs := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			abs += "/"
		}
		doc[key], _ = json.Marshal(abs)
		changed = true
	}
	if !changed {
		return data, nil
	}
	return json.Marshal(doc)
}
