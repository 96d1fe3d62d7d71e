// Package fmnist scores a Fashion-MNIST classifier on the real test set that Debian's
// dataset-fashion-mnist package installs: the idx-ubyte files (plain or gzipped) are read here,
// each image is fed to the model as float32 [1,1,28,28] with pixels / 255, and the share of
// argmax predictions equal to the label is the accuracy.
package fmnist

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/tensor"
)

// DefaultDir is where dataset-fashion-mnist installs the files.
const DefaultDir = "/usr/share/datasets/fashion-mnist"

// Set is a labelled image set.
type Set struct {
	Rows, Cols int
	Images     [][]byte // one Rows*Cols slice of 0..255 pixels per image
	Labels     []byte
}

// LoadTest reads the 10,000-image test set (t10k-*) from dir.
func LoadTest(dir string) (*Set, error) { return load(dir, "t10k") }

// LoadTrain reads the 60,000-image training set (train-*) from dir.
func LoadTrain(dir string) (*Set, error) { return load(dir, "train") }

func load(dir, prefix string) (*Set, error) {
	img, err := readFile(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lab, err := readFile(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	dims, pix, err := ParseIdx(img)
	if err != nil {
		return nil, fmt.Errorf("fmnist: %s images: %w", prefix, err)
	}
	if len(dims) != 3 {
		return nil, fmt.Errorf("fmnist: %s images: expected 3 dimensions (count, rows, cols), found %v", prefix, dims)
	}
	ldims, labels, err := ParseIdx(lab)
	if err != nil {
		return nil, fmt.Errorf("fmnist: %s labels: %w", prefix, err)
	}
	if len(ldims) != 1 || ldims[0] != dims[0] {
		return nil, fmt.Errorf("fmnist: %s: %v labels for %d images", prefix, ldims, dims[0])
	}
	s := &Set{Rows: dims[1], Cols: dims[2], Labels: labels}
	n := dims[1] * dims[2]
	for i := range dims[0] {
		s.Images = append(s.Images, pix[i*n:(i+1)*n])
	}
	return s, nil
}

// readFile reads name or name.gz from dir.
func readFile(dir, name string) ([]byte, error) {
	p := filepath.Join(dir, name)
	if b, err := os.ReadFile(p); err == nil {
		return b, nil
	}
	f, err := os.Open(p + ".gz")
	if err != nil {
		return nil, fmt.Errorf("fmnist: %s(.gz) not found in %s (apt-get install dataset-fashion-mnist): %w", name, dir, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("fmnist: %s.gz: %w", p, err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("fmnist: %s.gz: %w", p, err)
	}
	return b, nil
}

// ParseIdx parses an idx file of unsigned bytes (magic 0x00000803 or 0x00000801): its
// dimensions and its payload, which must be exactly as long as the dimensions say.
func ParseIdx(b []byte) ([]int, []byte, error) {
	if len(b) < 4 || b[0] != 0 || b[1] != 0 {
		return nil, nil, errors.New("not an idx file (bad magic)")
	}
	if b[2] != 0x08 {
		return nil, nil, fmt.Errorf("idx element type 0x%02x: only unsigned bytes (0x08) are supported", b[2])
	}
	nd := int(b[3])
	if nd == 0 || len(b) < 4+4*nd {
		return nil, nil, fmt.Errorf("idx header: %d dimensions do not fit in %d bytes", nd, len(b))
	}
	dims := make([]int, nd)
	total := 1
	for i := range dims {
		d := binary.BigEndian.Uint32(b[4+4*i:])
		if d == 0 || d > 1<<24 || uint64(total)*uint64(d) > 1<<31 {
			return nil, nil, fmt.Errorf("idx header: dimension %d is %d", i, d)
		}
		dims[i] = int(d)
		total *= int(d)
	}
	payload := b[4+4*nd:]
	if len(payload) != total {
		return nil, nil, fmt.Errorf("idx payload is %d bytes, dimensions %v need %d", len(payload), dims, total)
	}
	return dims, payload, nil
}

// Input returns image i as the model input: float32 [1,1,rows,cols], pixels / 255.
func (s *Set) Input(i int) *tensor.Tensor {
	px := s.Images[i]
	t := &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 1, int64(s.Rows), int64(s.Cols)}, Data: make([]byte, 4*len(px))}
	for k, p := range px {
		binary.LittleEndian.PutUint32(t.Data[4*k:], math.Float32bits(float32(p)/255))
	}
	return t
}

// Runner runs one input through a model and returns its output.
type Runner interface {
	Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)
}

// Accuracy is the share of the first n images (all when n ≤ 0) whose argmax of output equals
// the label, feeding each image as input.
func Accuracy(ctx context.Context, r Runner, s *Set, input, output string, n int) (float64, error) {
	if n <= 0 || n > len(s.Images) {
		n = len(s.Images)
	}
	correct := 0
	for i := range n {
		out, err := r.Run(ctx, map[string]*tensor.Tensor{input: s.Input(i)}, []string{output})
		if err != nil {
			return 0, fmt.Errorf("fmnist: image %d: %w", i, err)
		}
		t := out[output]
		if t == nil || t.DType != tensor.Float || len(t.Data) < 4 {
			return 0, fmt.Errorf("fmnist: image %d: output %s is not a float32 score vector", i, output)
		}
		best, bestV := 0, float32(math.Inf(-1))
		for k := 0; k+4 <= len(t.Data); k += 4 {
			if v := math.Float32frombits(binary.LittleEndian.Uint32(t.Data[k:])); v > bestV {
				best, bestV = k/4, v
			}
		}
		if best == int(s.Labels[i]) {
			correct++
		}
	}
	return float64(correct) / float64(n), nil
}
