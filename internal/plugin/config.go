package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/processor"
)

// ConfigFile is the content of the EAS_PLUGIN_CONFIG file.
type ConfigFile struct {
	Config    json.RawMessage `json:"config"`    // the plugin's own "config" from service.json ({} when absent)
	Processor string          `json:"processor"` // the service's processor name
	Metadata  json.RawMessage `json:"metadata"`  // the service's "metadata" object ({} when absent)
}

// WriteConfig writes the EAS_PLUGIN_CONFIG file for one plugin run. Absent or null config and
// metadata are written as {}; anything else must be a JSON object.
func WriteConfig(path string, pluginConfig json.RawMessage, processor string, metadata json.RawMessage) error {
	cfg, err := object("config", pluginConfig)
	if err != nil {
		return err
	}
	meta, err := object("metadata", metadata)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(ConfigFile{Config: cfg, Processor: processor, Metadata: meta}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plugin config: %w", err)
	}
	// 0600: metadata can carry service settings the operator would not want world-readable.
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write plugin config: %w", err)
	}
	return nil
}

func object(field string, raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return json.RawMessage("{}"), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("plugin %s: want a JSON object: %w", field, err)
	}
	return raw, nil
}

// ReadRuntime reads the optional runtime.json a plugin wrote into its output directory.
// ok is false when there is none. Unknown fields are an error, so a typo is not silently ignored.
func ReadRuntime(outDir string) (rt processor.Runtime, ok bool, err error) {
	p := filepath.Join(outDir, RuntimeFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return rt, false, nil
	}
	if err != nil {
		return rt, false, fmt.Errorf("read plugin %s: %w", RuntimeFile, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rt); err != nil {
		return rt, false, fmt.Errorf("plugin %s: %w", RuntimeFile, err)
	}
	return rt, true, nil
}

// OutputEntry finds the model file in a plugin's output directory: the same path as the
// input's model entry when the output has it, else the single model file found there.
func OutputEntry(outDir, inputEntry string) (string, error) {
	if inputEntry != "" {
		if info, err := os.Stat(filepath.Join(outDir, filepath.FromSlash(inputEntry))); err == nil && info.Mode().IsRegular() {
			return inputEntry, nil
		}
	}
	entry, err := modelsource.ResolveEntry(outDir, "", nil)
	if err != nil {
		return "", fmt.Errorf("plugin output: %w", err)
	}
	return entry, nil
}
