package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/codec"
)

// legacyTFSignaturesFile held a converted SavedModel's signatures next to model.onnx in bundles
// sealed before bundle.json recorded them (TFModel.Signatures). Such bundles still serve
// signature_name until the service is deployed again.
const legacyTFSignaturesFile = "tf_signatures.json"

// tfSignatures returns the signatures of a converted SavedModel: those bundle.json records,
// else those of a bundle sealed before it did (model/tf_signatures.json); a converted
// frozen.pb has none (nil, nil).
func tfSignatures(bundleDir string, m *bundle.TFModel) (codec.TFSignatures, error) {
	if len(m.Signatures) > 0 {
		sigs := make(codec.TFSignatures, len(m.Signatures))
		for name, sd := range m.Signatures {
			s := codec.TFSignature{MethodName: sd.MethodName, Inputs: make(map[string]string, len(sd.Inputs)), Outputs: make(map[string]string, len(sd.Outputs))}
			for alias, t := range sd.Inputs {
				s.Inputs[alias] = t.Name
			}
			for alias, t := range sd.Outputs {
				s.Outputs[alias] = t.Name
			}
			sigs[name] = s
		}
		return sigs, nil
	}
	path := filepath.Join(bundleDir, "model", legacyTFSignaturesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read TensorFlow signatures: %w", err)
	}
	var sigs codec.TFSignatures
	if err := json.Unmarshal(b, &sigs); err != nil {
		return nil, fmt.Errorf("bundle %s: expected a JSON object of signatures: %w", path, err)
	}
	return sigs, nil
}
