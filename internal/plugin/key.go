package plugin

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// Spec is one entry of a service's plugins list, as the pipeline runs it.
type Spec struct {
	Index   int             // position in the plugins list
	Image   string          // as written in service.json
	Command string          // as written in service.json
	Config  json.RawMessage // the plugin's "config" object; may be nil
	Device  string          // "cpu" or "gpu": DeviceOf(Command)
}

// keyVersion changes whenever the key's inputs or encoding change, so old cache entries
// are simply never hit again.
const keyVersion = "openeas-plugin-key/v1"

// metadataIgnored lists metadata fields that only size the deployment (how many instances
// serve it) and cannot change a plugin's result; leaving them out of the key means scaling a
// service never re-runs its plugins.
var metadataIgnored = []string{"instance"}

// Key returns the plugin's content key, "sha256:<hex>": a hash of the input model digest, the
// image, the command, the plugin config, the device, the service's processor and metadata (the
// other contents of EAS_PLUGIN_CONFIG, less metadataIgnored) and the plugin runtime version
// (for Blade, the OpenEAS version that ships it). JSON inputs are canonicalised first, so key
// order and white space do not matter. Equal keys mean interchangeable results.
func Key(modelDigest string, p Spec, processorJSON, metadataJSON []byte, runtimeVersion string) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	device := p.Device
	if device == "" {
		device = "cpu"
	}
	field([]byte(keyVersion))
	field([]byte(modelDigest))
	field([]byte(strings.TrimSpace(p.Image)))
	field([]byte(p.Command))
	field(canonicalJSON(p.Config, nil))
	field([]byte(device))
	field(canonicalJSON(processorJSON, nil))
	field(canonicalJSON(metadataJSON, metadataIgnored))
	field([]byte(runtimeVersion))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ID is the plugin's display name, as EAS prints it: "eas-plugin-" + the first 8 hex digits of key.
func ID(key string) string {
	h := strings.TrimPrefix(key, "sha256:")
	if len(h) > 8 {
		h = h[:8]
	}
	return "eas-plugin-" + h
}

// canonicalJSON re-encodes data with sorted keys and no white space, dropping the given
// top-level object keys. Empty input and JSON null both become "null". Invalid JSON is hashed
// as given: it still yields a stable key, and the pipeline rejects it elsewhere.
func canonicalJSON(data []byte, drop []string) []byte {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return []byte("null")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep numbers exactly as written: 1.0 and 1 stay distinct, big ints intact
	var v any
	if err := dec.Decode(&v); err != nil {
		return data
	}
	if m, ok := v.(map[string]any); ok {
		for _, k := range drop {
			delete(m, k)
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return data
	}
	return out
}
