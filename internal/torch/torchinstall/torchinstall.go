// Package torchinstall tells, without loading anything, whether an OpenEAS installation can
// serve TorchScript: whether scripts/build-torch-shim.sh put libopeneas_torch.so and its
// description (libopeneas_torch.json) next to the binaries. easd has no cgo and never
// loads libtorch; it asks this package at create time so that a PyTorch service on a
// machine without libtorch fails at once with what to install, not later in a worker.
package torchinstall

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files written by scripts/build-torch-shim.sh into bin/.
const (
	ShimFile = "libopeneas_torch.so"
	InfoFile = "libopeneas_torch.json"
)

// Hint says what to install.
const Hint = "install libtorch (apt-get install libtorch-dev libopenblas0-pthread) and run make build, " +
	"which builds bin/" + ShimFile + " (or scripts/build-torch-shim.sh)"

// Info describes the shim a build produced.
type Info struct {
	Libtorch string `json:"libtorch"` // libtorch's version, e.g. "1.13.1"
	CUDA     bool   `json:"cuda"`     // linked against libtorch's CUDA libraries
}

// Read returns the description of the shim in binDir, or an error saying what to install.
func Read(binDir string) (Info, error) {
	if _, err := os.Stat(filepath.Join(binDir, ShimFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("this installation cannot serve PyTorch models: %s not found; %s", filepath.Join(binDir, ShimFile), Hint)
		}
		return Info{}, err
	}
	var info Info
	b, err := os.ReadFile(filepath.Join(binDir, InfoFile))
	if err != nil {
		return Info{}, fmt.Errorf("this installation's PyTorch shim has no description (%w); rebuild it: %s", err, Hint)
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Libtorch == "" {
		return Info{}, fmt.Errorf("%s: not a shim description (%v); rebuild it: %s", filepath.Join(binDir, InfoFile), err, Hint)
	}
	return info, nil
}

// Check reports whether binDir's shim can serve a processor on the GPU (gpu) or CPU.
func Check(binDir string, gpu bool) error {
	info, err := Read(binDir)
	if err != nil {
		return err
	}
	if gpu && !info.CUDA {
		return fmt.Errorf("the pytorch_gpu processors need libtorch with CUDA; this installation's shim is built against CPU-only libtorch %s "+
			"(build it against a CUDA libtorch: TORCH_DIR=/path/to/torch scripts/build-torch-shim.sh), or use pytorch_cpu", info.Libtorch)
	}
	return nil
}
