// Package auxdata reads Blade's auxiliary data (test data and calibration
// sets) into tensors and binds them to a model's inputs.
//
// Formats (see EAS.md §2 and the seed):
//
//   - TensorFlow style: np.save of a list of feed dicts {name: ndarray or
//     numpy scalar}, i.e. a .npy holding a pickled object array. Each dict is
//     one named sample. Python floats, ints, bools and strs in a dict become
//     float32, int64, bool and string scalars.
//   - Plain numeric .npy: one array, read as one positional sample (a
//     single-input model).
//   - .npz (np.savez): one sample, name → array; archives written without
//     names (arr_0, arr_1, …) are positional in that order.
//   - PyTorch style: torch.save of a list of tuples (or lists) of tensors,
//     one positional sample per tuple; a bare tensor is a one-input sample.
//
// Plain .npy and .npz samples may also hold several samples stacked along a
// leading axis: Bind splits them when the arrays do not fit the model's
// inputs as they are but do fit with their first axis removed (see Bind).
package auxdata

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/openeas/openeas/internal/tensor"
)

// Sample is one set of model inputs: either by name (Named) or by position
// (Positional), never both.
type Sample struct {
	Named      map[string]*tensor.Tensor
	Positional []*tensor.Tensor
}

// Dataset is the content of one auxiliary data file.
type Dataset struct {
	Samples []Sample
	Source  string // the file read
	Format  string // "npy-pickle", "npy", "npz" or "pth"
}

// Format names.
const (
	FormatNpyPickle = "npy-pickle"
	FormatNpy       = "npy"
	FormatNpz       = "npz"
	FormatPth       = "pth"
)

// maxFileSize bounds what Read loads into memory.
const maxFileSize = 4 << 30

// Read loads an auxiliary data file, choosing the format from its content
// (npy magic, zip with a torch data.pkl, other zip, legacy torch pickle) and
// then its extension.
func Read(path string) (*Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auxdata: %w", err)
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("auxdata: %s: %d bytes is over the %d-byte limit", path, st.Size(), int64(maxFileSize))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auxdata: %w", err)
	}
	ds, err := decode(path, b)
	if err != nil {
		return nil, fmt.Errorf("auxdata: %s: %w", path, err)
	}
	ds.Source = path
	if len(ds.Samples) == 0 {
		return nil, fmt.Errorf("auxdata: %s: no samples", path)
	}
	return ds, nil
}

func decode(path string, b []byte) (*Dataset, error) {
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case bytes.HasPrefix(b, npyMagic):
		return decodeNpyFile(b)
	case bytes.HasPrefix(b, []byte("PK\x03\x04")) || bytes.HasPrefix(b, []byte("PK\x05\x06")):
		if isTorchZip(b) {
			return decodePth(path)
		}
		return decodeNpz(b)
	case ext == ".pth" || ext == ".pt":
		return decodePth(path)
	case ext == ".npy" || ext == ".npz":
		return nil, errors.New("not a numpy file (bad magic)")
	}
	return nil, fmt.Errorf("unknown format (want .npy, .npz or .pth; content starts %q)", head(b))
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// Info summarizes a sample for reports: "name: float32[1,3,224,224]".
func (s Sample) Info() []string {
	var out []string
	if s.Named != nil {
		for _, k := range sortedKeys(s.Named) {
			t := s.Named[k]
			out = append(out, fmt.Sprintf("%s: %v%s", k, t.DType, tensor.ShapeString(t.Shape)))
		}
		return out
	}
	for i, t := range s.Positional {
		out = append(out, fmt.Sprintf("#%d: %v%s", i, t.DType, tensor.ShapeString(t.Shape)))
	}
	return out
}
