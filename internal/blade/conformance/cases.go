// Package conformance runs ONNX's backend test suite (Debian's libonnx-testdata) through Blade
// and holds the pieces that test and the Blade benchmark share: reading a suite case, writing
// its inputs as an .npz Blade can read, comparing outputs the way ONNX's backend tests do, and
// (in fmnist/) scoring the Fashion-MNIST model on the real test set.
package conformance

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tensor"
)

// SuiteDir is where Debian's libonnx-testdata installs the suite.
const SuiteDir = "/usr/share/libonnx-testdata/data"

// Suites are the folders of SuiteDir that hold runnable cases ("real" holds only URLs).
var Suites = []string{"node", "pytorch-converted", "pytorch-operator", "simple"}

// Case is one model of the suite with its reference data sets.
type Case struct {
	Name  string // "<suite>/<case>", e.g. "node/test_add"
	Model string // path of model.onnx
	// Inputs and Outputs name the graph's real inputs (initializers excluded) and outputs, in
	// the order the input_N.pb / output_N.pb files follow.
	Inputs, Outputs []string
	Sets            []DataSet
	// DataErr says why the reference data could not be read as tensors (sequence, map or
	// optional values); Sets is then empty.
	DataErr string
}

// DataSet is one test_data_set_N folder.
type DataSet struct {
	Inputs  map[string]*tensor.Tensor
	Outputs map[string]*tensor.Tensor
}

// ListCases returns the case directories under root (sorted), one per model.onnx.
func ListCases(root string) ([]string, error) {
	var dirs []string
	for _, s := range Suites {
		m, err := filepath.Glob(filepath.Join(root, s, "*", "model.onnx"))
		if err != nil {
			return nil, err
		}
		for _, p := range m {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	sort.Strings(dirs)
	return dirs, nil
}

// LoadCase reads the case in dir. A model that cannot be parsed is an error; reference data
// that is not made of tensors is reported in DataErr.
func LoadCase(dir string) (*Case, error) {
	c := &Case{Name: filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir), Model: filepath.Join(dir, "model.onnx")}
	m, err := onnx.Load(c.Model)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	g := m.GetGraph()
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, vi := range g.GetInput() {
		if !inits[vi.GetName()] {
			c.Inputs = append(c.Inputs, vi.GetName())
		}
	}
	for _, vi := range g.GetOutput() {
		c.Outputs = append(c.Outputs, vi.GetName())
	}
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	sort.Strings(sets)
	for _, sd := range sets {
		ds := DataSet{Inputs: map[string]*tensor.Tensor{}, Outputs: map[string]*tensor.Tensor{}}
		if err := readSide(sd, "input", c.Inputs, ds.Inputs); err != nil {
			c.DataErr, c.Sets = err.Error(), nil
			return c, nil
		}
		if err := readSide(sd, "output", c.Outputs, ds.Outputs); err != nil {
			c.DataErr, c.Sets = err.Error(), nil
			return c, nil
		}
		c.Sets = append(c.Sets, ds)
	}
	if len(sets) == 0 {
		c.DataErr = "no test_data_set_* folders"
	}
	return c, nil
}

// readSide reads <kind>_N.pb for each name into dst.
func readSide(dir, kind string, names []string, dst map[string]*tensor.Tensor) error {
	files, _ := filepath.Glob(filepath.Join(dir, kind+"_*.pb"))
	if len(files) != len(names) {
		return fmt.Errorf("%s: %d %s files for %d graph %ss", filepath.Base(dir), len(files), kind, len(names), kind)
	}
	for i, name := range names {
		path := filepath.Join(dir, fmt.Sprintf("%s_%d.pb", kind, i))
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var tp onnxpb.TensorProto
		if err := proto.Unmarshal(b, &tp); err != nil {
			return fmt.Errorf("%s is not a TensorProto: %w", filepath.Base(path), err)
		}
		if tp.DataType == nil || tp.GetDataType() == int32(onnxpb.TensorProto_UNDEFINED) {
			return fmt.Errorf("%s is not a tensor (sequence, map or optional value)", filepath.Base(path))
		}
		t, err := onnx.ToTensor(&tp)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		dst[name] = t
	}
	return nil
}

// npyDescr is the numpy dtype string of a tensor dtype ("" when numpy has none, e.g. bfloat16).
func npyDescr(t *tensor.Tensor) string {
	switch t.DType {
	case tensor.Float:
		return "<f4"
	case tensor.Double:
		return "<f8"
	case tensor.Float16:
		return "<f2"
	case tensor.Int8:
		return "|i1"
	case tensor.Int16:
		return "<i2"
	case tensor.Int32:
		return "<i4"
	case tensor.Int64:
		return "<i8"
	case tensor.Uint8:
		return "|u1"
	case tensor.Uint16:
		return "<u2"
	case tensor.Uint32:
		return "<u4"
	case tensor.Uint64:
		return "<u8"
	case tensor.Bool:
		return "|b1"
	case tensor.String:
		n := 1
		for _, s := range t.Strings {
			n = max(n, utf8.RuneCountInString(s))
		}
		return fmt.Sprintf("<U%d", n)
	}
	return ""
}

// encodeNpy renders t as a version-1 .npy file.
func encodeNpy(t *tensor.Tensor) ([]byte, error) {
	descr := npyDescr(t)
	if descr == "" {
		return nil, fmt.Errorf("dtype %s has no numpy equivalent", t.DType)
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = fmt.Sprint(d)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	// The header, with its newline, pads the preamble to a multiple of 64 bytes.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	out := append([]byte("\x93NUMPY\x01\x00"), 0, 0)
	binary.LittleEndian.PutUint16(out[8:], uint16(len(header)))
	out = append(out, header...)
	if t.DType != tensor.String {
		return append(out, t.Data...), nil
	}
	width := 0
	fmt.Sscanf(descr, "<U%d", &width)
	for _, s := range t.Strings {
		rs := []rune(s)
		for k := range width {
			var r uint32
			if k < len(rs) {
				r = uint32(rs[k])
			}
			out = binary.LittleEndian.AppendUint32(out, r)
		}
	}
	return out, nil
}

// WriteNpz writes feeds as an np.savez archive (one member per input name): the
// plain-.npz form of Blade's test data. Tensors numpy cannot express (bfloat16) are errors.
func WriteNpz(path string, feeds map[string]*tensor.Tensor) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	names := make([]string, 0, len(feeds))
	for n := range feeds {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := encodeNpy(feeds[n])
		if err != nil {
			f.Close()
			return fmt.Errorf("input %s: %w", n, err)
		}
		w, err := zw.Create(n + ".npy")
		if err == nil {
			_, err = w.Write(b)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// Tolerance is ONNX backend-test closeness: |got−ref| ≤ ATol + RTol·|ref| per element
// (numpy.testing.assert_allclose), NaN equal to NaN, strings and dtypes exact.
type Tolerance struct{ RTol, ATol float64 }

// DefaultTolerance is what ONNX's backend tests use unless a case sets its own.
var DefaultTolerance = Tolerance{RTol: 1e-3, ATol: 1e-7}

// AllClose reports whether got matches ref, and where not, the first mismatch.
func AllClose(got, ref *tensor.Tensor, tol Tolerance) (bool, string) {
	if got == nil {
		return false, "missing"
	}
	if got.DType != ref.DType || !slices.Equal(got.Shape, ref.Shape) {
		return false, fmt.Sprintf("got %s%v, reference %s%v", got.DType, got.Shape, ref.DType, ref.Shape)
	}
	if ref.DType == tensor.String {
		for i := range ref.Strings {
			if got.Strings[i] != ref.Strings[i] {
				return false, fmt.Sprintf("element %d: %q, reference %q", i, got.Strings[i], ref.Strings[i])
			}
		}
		return true, ""
	}
	a, okA := got.Float64s()
	b, okB := ref.Float64s()
	if !okA || !okB {
		return false, fmt.Sprintf("cannot compare dtype %s", ref.DType)
	}
	for i := range b {
		x, y := a[i], b[i]
		switch {
		case math.IsNaN(y) || math.IsNaN(x):
			if math.IsNaN(x) != math.IsNaN(y) {
				return false, fmt.Sprintf("element %d: %g, reference %g", i, x, y)
			}
		case math.IsInf(y, 0) || math.IsInf(x, 0):
			if x != y {
				return false, fmt.Sprintf("element %d: %g, reference %g", i, x, y)
			}
		case math.Abs(x-y) > tol.ATol+tol.RTol*math.Abs(y):
			return false, fmt.Sprintf("element %d: %g, reference %g (|diff| %.3g > %.3g)", i, x, y, math.Abs(x-y), tol.ATol+tol.RTol*math.Abs(y))
		}
	}
	return true, ""
}

// Cosine is the cosine similarity of two equally long vectors (1 when both are zero).
func Cosine(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		if math.IsNaN(a[i]) || math.IsNaN(b[i]) || math.IsInf(a[i], 0) || math.IsInf(b[i], 0) {
			continue
		}
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	switch {
	case na == 0 && nb == 0:
		return 1
	case na == 0 || nb == 0:
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
