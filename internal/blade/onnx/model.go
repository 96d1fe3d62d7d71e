// Package onnx loads, indexes and saves ONNX models held as the generated
// protobuf types of package onnxpb. It resolves external tensor data,
// writes models deterministically, and offers a small graph index that the
// Blade passes rewrite through.
package onnx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// MaxProtoSize is the size above which a model must keep its weights outside
// the protobuf: protobuf messages cannot exceed 2 GiB, and 1.8 GB leaves room
// for the graph itself.
const MaxProtoSize = 1_800_000_000

// externalAlign is the alignment of each tensor in an external data file, so
// runtimes can mmap it with page-aligned offsets.
const externalAlign = 4096

// autoExternalMin is the smallest tensor moved out of a model that is too big
// for one protobuf when the caller gave no threshold.
const autoExternalMin = 1024

// Decode parses a serialized model. Tensors stored as external data keep
// their references; use Load to resolve them.
func Decode(b []byte) (*onnxpb.ModelProto, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("onnx: decode model: %w", err)
	}
	if m.GetGraph() == nil {
		return nil, errors.New("onnx: decode model: no graph (not an ONNX model?)")
	}
	return m, nil
}

// Load reads an ONNX model file and inlines any external tensor data
// (data_location EXTERNAL: location, offset, length), resolved relative to
// the model file's directory. Locations must stay inside that directory.
// After Load every tensor's bytes are in the message itself.
func Load(path string) (*onnxpb.ModelProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: load %s: %w", path, err)
	}
	m, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("onnx: load %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	err = walkModelTensors(m, func(t *onnxpb.TensorProto) error {
		if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			return nil
		}
		return inlineExternal(t, dir, files)
	})
	if err != nil {
		return nil, fmt.Errorf("onnx: load %s: %w", path, err)
	}
	return m, nil
}

// inlineExternal reads one external tensor into RawData and clears its
// external reference.
func inlineExternal(t *onnxpb.TensorProto, dir string, files map[string]*os.File) error {
	var loc string
	offset, length := int64(0), int64(-1)
	for _, e := range t.GetExternalData() {
		var err error
		switch e.GetKey() {
		case "location":
			loc = e.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(e.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(e.GetValue(), 10, 64)
		}
		if err != nil {
			return fmt.Errorf("tensor %q: external_data %s=%q: not an integer", t.GetName(), e.GetKey(), e.GetValue())
		}
	}
	if loc == "" {
		return fmt.Errorf("tensor %q: external data without a location", t.GetName())
	}
	clean := filepath.Clean(filepath.FromSlash(loc))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return fmt.Errorf("tensor %q: external data location %q leaves the model directory", t.GetName(), loc)
	}
	if offset < 0 {
		return fmt.Errorf("tensor %q: external data offset %d is negative", t.GetName(), offset)
	}
	full := filepath.Join(dir, clean)
	f, ok := files[full]
	if !ok {
		var err error
		if f, err = os.Open(full); err != nil {
			return fmt.Errorf("tensor %q: external data: %w", t.GetName(), err)
		}
		files[full] = f
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("tensor %q: external data %s: %w", t.GetName(), full, err)
	}
	if length < 0 {
		length = st.Size() - offset
	}
	if offset+length > st.Size() || length < 0 {
		return fmt.Errorf("tensor %q: external data %s: offset %d + length %d past end of file (%d bytes)",
			t.GetName(), full, offset, length, st.Size())
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, offset); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return fmt.Errorf("tensor %q: external data %s: %w", t.GetName(), full, err)
	}
	t.RawData = buf
	t.ExternalData = nil
	t.DataLocation = nil
	return nil
}

// Encode serializes a model deterministically: the same message always gives
// the same bytes.
func Encode(m *onnxpb.ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("onnx: encode model: %w", err)
	}
	return b, nil
}

// Save writes m to path deterministically. Tensor data moves to one external
// file, "<base name of path>.data" beside the model, at 4 KiB-aligned offsets:
//
//   - externalThreshold > 0: every tensor of at least that many bytes;
//   - externalThreshold == 0: nothing, unless the model would exceed
//     MaxProtoSize, then every tensor of at least 1 KiB;
//   - externalThreshold < 0: nothing; a model over MaxProtoSize is an error.
//
// Save leaves m as it found it, but changes it while it runs: do not use m
// from another goroutine during the call. Both files are written to
// temporary names first and renamed into place.
func Save(m *onnxpb.ModelProto, path string, externalThreshold int64) error {
	threshold := externalThreshold
	if threshold == 0 {
		if proto.Size(m) > MaxProtoSize {
			threshold = autoExternalMin
		}
	}
	dataName := filepath.Base(path) + ".data"
	dataPath := filepath.Join(filepath.Dir(path), dataName)

	var data []byte
	var restore []func()
	defer func() {
		for i := len(restore) - 1; i >= 0; i-- {
			restore[i]()
		}
	}()
	if threshold > 0 {
		err := walkModelTensors(m, func(t *onnxpb.TensorProto) error {
			if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || t.GetDataType() == int32(onnxpb.TensorProto_STRING) {
				return nil
			}
			size := tensorByteSize(t)
			if size < threshold {
				return nil
			}
			raw, err := rawBytes(t)
			if err != nil {
				return err
			}
			if pad := len(data) % externalAlign; pad != 0 {
				data = append(data, make([]byte, externalAlign-pad)...)
			}
			offset := len(data)
			data = append(data, raw...)
			restore = append(restore, detach(t))
			t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
			t.ExternalData = []*onnxpb.StringStringEntryProto{
				{Key: proto.String("location"), Value: proto.String(dataName)},
				{Key: proto.String("offset"), Value: proto.String(strconv.Itoa(offset))},
				{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("onnx: save %s: %w", path, err)
		}
	}
	b, err := Encode(m)
	if err != nil {
		return fmt.Errorf("onnx: save %s: %w", path, err)
	}
	if len(b) > MaxProtoSize {
		return fmt.Errorf("onnx: save %s: model is %d bytes, over the %d-byte protobuf limit; use external data", path, len(b), MaxProtoSize)
	}
	if len(data) > 0 {
		if err := writeFileAtomic(dataPath, data); err != nil {
			return fmt.Errorf("onnx: save %s: %w", path, err)
		}
	}
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("onnx: save %s: %w", path, err)
	}
	return nil
}

// detach clears a tensor's payload fields and returns a func that puts them back.
func detach(t *onnxpb.TensorProto) func() {
	saved := struct {
		raw []byte
		f   []float32
		i32 []int32
		i64 []int64
		d   []float64
		u64 []uint64
		loc *onnxpb.TensorProto_DataLocation
		ext []*onnxpb.StringStringEntryProto
	}{t.RawData, t.FloatData, t.Int32Data, t.Int64Data, t.DoubleData, t.Uint64Data, t.DataLocation, t.ExternalData}
	t.RawData, t.FloatData, t.Int32Data, t.Int64Data, t.DoubleData, t.Uint64Data = nil, nil, nil, nil, nil, nil
	return func() {
		t.RawData, t.FloatData, t.Int32Data, t.Int64Data, t.DoubleData, t.Uint64Data = saved.raw, saved.f, saved.i32, saved.i64, saved.d, saved.u64
		t.DataLocation, t.ExternalData = saved.loc, saved.ext
	}
}

func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// walkModelTensors calls fn on every tensor of the model: initializers,
// sparse initializers, tensor attributes, in subgraphs, training graphs and
// functions too, in a fixed order.
func walkModelTensors(m *onnxpb.ModelProto, fn func(*onnxpb.TensorProto) error) error {
	if err := walkGraphTensors(m.GetGraph(), fn); err != nil {
		return err
	}
	for _, ti := range m.GetTrainingInfo() {
		for _, g := range []*onnxpb.GraphProto{ti.GetInitialization(), ti.GetAlgorithm()} {
			if err := walkGraphTensors(g, fn); err != nil {
				return err
			}
		}
	}
	for _, f := range m.GetFunctions() {
		if err := walkNodesTensors(f.GetNode(), fn); err != nil {
			return err
		}
	}
	return nil
}

func walkGraphTensors(g *onnxpb.GraphProto, fn func(*onnxpb.TensorProto) error) error {
	if g == nil {
		return nil
	}
	for _, t := range g.GetInitializer() {
		if err := fn(t); err != nil {
			return err
		}
	}
	for _, s := range g.GetSparseInitializer() {
		if err := walkSparse(s, fn); err != nil {
			return err
		}
	}
	return walkNodesTensors(g.GetNode(), fn)
}

func walkSparse(s *onnxpb.SparseTensorProto, fn func(*onnxpb.TensorProto) error) error {
	for _, t := range []*onnxpb.TensorProto{s.GetValues(), s.GetIndices()} {
		if t != nil {
			if err := fn(t); err != nil {
				return err
			}
		}
	}
	return nil
}

func walkNodesTensors(nodes []*onnxpb.NodeProto, fn func(*onnxpb.TensorProto) error) error {
	for _, n := range nodes {
		for _, a := range n.GetAttribute() {
			if a.GetT() != nil {
				if err := fn(a.GetT()); err != nil {
					return err
				}
			}
			for _, t := range a.GetTensors() {
				if err := fn(t); err != nil {
					return err
				}
			}
			if a.GetSparseTensor() != nil {
				if err := walkSparse(a.GetSparseTensor(), fn); err != nil {
					return err
				}
			}
			for _, s := range a.GetSparseTensors() {
				if err := walkSparse(s, fn); err != nil {
					return err
				}
			}
			if err := walkGraphTensors(a.GetG(), fn); err != nil {
				return err
			}
			for _, g := range a.GetGraphs() {
				if err := walkGraphTensors(g, fn); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
