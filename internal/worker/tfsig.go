package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/codec"
)

// readTFSignatures reads the signatures a converted SavedModel left next to its model
// (codec.TFSignaturesFile); a converted frozen.pb has none (nil, nil).
func readTFSignatures(modelDir string) (codec.TFSignatures, error) {
	path := filepath.Join(modelDir, codec.TFSignaturesFile)
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
