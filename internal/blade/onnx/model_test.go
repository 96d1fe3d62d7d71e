package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

const testdataGlob = "/usr/share/libonnx-testdata/data/*/*/model.onnx"

// TestConformanceModelsRoundTrip loads every model of Debian's ONNX backend
// test suite, saves it twice and reloads it: the reloaded model must equal the
// original and both saves must be byte-identical.
func TestConformanceModelsRoundTrip(t *testing.T) {
	paths, _ := filepath.Glob(testdataGlob)
	if len(paths) == 0 {
		t.Skip("libonnx-testdata not installed (apt-get install libonnx-testdata)")
	}
	dir := t.TempDir()
	for _, p := range paths {
		m, err := Load(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		out1, out2 := filepath.Join(dir, "a.onnx"), filepath.Join(dir, "b.onnx")
		if err := Save(m, out1, 0); err != nil {
			t.Fatalf("%s: save: %v", p, err)
		}
		if err := Save(m, out2, 0); err != nil {
			t.Fatalf("%s: save: %v", p, err)
		}
		b1, _ := os.ReadFile(out1)
		b2, _ := os.ReadFile(out2)
		if !bytes.Equal(b1, b2) {
			t.Errorf("%s: two saves differ", p)
		}
		back, err := Load(out1)
		if err != nil {
			t.Fatalf("%s: reload: %v", p, err)
		}
		if !proto.Equal(m, back) {
			t.Errorf("%s: reloaded model differs", p)
		}
	}
	t.Logf("%d models round-tripped", len(paths))
}

func testModel() *onnxpb.ModelProto {
	big := make([]float32, 3000)
	for i := range big {
		big[i] = float32(i) * 0.5
	}
	g := &onnxpb.GraphProto{
		Name: ptr("g"),
		Initializer: []*onnxpb.TensorProto{
			Float32Tensor("w", []int64{3000}, big),
			Float32Tensor("small", []int64{2}, []float32{1, 2}),
			{Name: ptr("typed"), DataType: ptr(int32(onnxpb.TensorProto_INT64)), Dims: []int64{600}, Int64Data: make([]int64, 600)},
		},
		Node: []*onnxpb.NodeProto{{OpType: ptr("Add"), Input: []string{"x", "w"}, Output: []string{"y"}}},
	}
	return &onnxpb.ModelProto{IrVersion: ptr(int64(8)), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(13))}}}
}

func TestSaveExternalData(t *testing.T) {
	m := testModel()
	orig := proto.Clone(m)
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := Save(m, path, 1024); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, orig) {
		t.Fatal("Save changed the caller's model")
	}
	st, err := os.Stat(filepath.Join(dir, "model.onnx.data"))
	if err != nil {
		t.Fatalf("no external data file: %v", err)
	}
	// w (12000 bytes) at 0, typed (4800 bytes) at the next 4 KiB boundary 12288.
	if st.Size() != 12288+4800 {
		t.Errorf("data file is %d bytes, want %d", st.Size(), 12288+4800)
	}
	raw, _ := os.ReadFile(path)
	stored, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	locs := map[string]string{}
	for _, init := range stored.Graph.Initializer {
		if init.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
			var kv []string
			for _, e := range init.ExternalData {
				kv = append(kv, e.GetKey()+"="+e.GetValue())
			}
			locs[init.GetName()] = strings.Join(kv, ",")
		}
	}
	want := map[string]string{
		"w":     "location=model.onnx.data,offset=0,length=12000",
		"typed": "location=model.onnx.data,offset=12288,length=4800",
	}
	for k, v := range want {
		if locs[k] != v {
			t.Errorf("tensor %s stored as %q, want %q", k, locs[k], v)
		}
	}
	if len(locs) != 2 {
		t.Errorf("external tensors %v, want only w and typed", locs)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"w", "small"} {
		a, _ := TensorToFloat32(findInit(orig.(*onnxpb.ModelProto), name))
		b, err := TensorToFloat32(findInit(back, name))
		if err != nil || !slices.Equal(a, b) {
			t.Errorf("tensor %s changed in the round trip (%v)", name, err)
		}
	}
	typed, err := TensorToInt64(findInit(back, "typed"))
	if err != nil || len(typed) != 600 {
		t.Errorf("typed tensor after reload: %d values, %v", len(typed), err)
	}
	// Saving again gives identical bytes in both files.
	path2 := filepath.Join(dir, "again.onnx")
	if err := Save(m, path2, 1024); err != nil {
		t.Fatal(err)
	}
	d1, _ := os.ReadFile(path + ".data")
	d2, _ := os.ReadFile(path2 + ".data")
	if !bytes.Equal(d1, d2) {
		t.Error("external data differs between two saves")
	}
}

func findInit(m *onnxpb.ModelProto, name string) *onnxpb.TensorProto {
	for _, t := range m.GetGraph().GetInitializer() {
		if t.GetName() == name {
			return t
		}
	}
	return nil
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ext := func(loc, off, length string) []byte {
		m := testModel()
		w := m.Graph.Initializer[0]
		w.RawData = nil
		w.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		w.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: ptr("location"), Value: ptr(loc)}, {Key: ptr("offset"), Value: ptr(off)}, {Key: ptr("length"), Value: ptr(length)},
		}
		b, _ := Encode(m)
		return b
	}
	write("short.data", make([]byte, 100))
	good, _ := Encode(testModel())
	cases := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"not onnx", "text.onnx", []byte("hello, this is not a model"), "text.onnx"},
		{"truncated", "trunc.onnx", good[:len(good)/2], "trunc.onnx"},
		{"empty", "empty.onnx", nil, "no graph"},
		{"missing data file", "m1.onnx", ext("nope.data", "0", "12000"), "nope.data"},
		{"escaping location", "m2.onnx", ext("../x.data", "0", "4"), "leaves the model directory"},
		{"past end", "m3.onnx", ext("short.data", "0", "12000"), "past end of file"},
		{"bad offset", "m4.onnx", ext("short.data", "x", "4"), "not an integer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(c.file, c.data)
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
				t.Errorf("error %q should mention %q and the file %s", err, c.want, c.file)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "absent.onnx")); err == nil || !strings.Contains(err.Error(), "absent.onnx") {
		t.Errorf("missing file error %v should name it", err)
	}
}

func TestTensorAccessors(t *testing.T) {
	typed := &onnxpb.TensorProto{Name: ptr("f"), DataType: ptr(int32(onnxpb.TensorProto_FLOAT)), Dims: []int64{2}, FloatData: []float32{1.5, -2}}
	raw := Float32Tensor("f", []int64{2}, []float32{1.5, -2})
	for _, tp := range []*onnxpb.TensorProto{typed, raw} {
		v, err := TensorToFloat32(tp)
		if err != nil || !slices.Equal(v, []float32{1.5, -2}) {
			t.Errorf("TensorToFloat32 = %v, %v", v, err)
		}
	}
	i32 := &onnxpb.TensorProto{Name: ptr("i"), DataType: ptr(int32(onnxpb.TensorProto_INT32)), Dims: []int64{3}, Int32Data: []int32{1, -2, 3}}
	if v, err := TensorToInt64(i32); err != nil || v[1] != -2 || len(v) != 3 {
		t.Errorf("TensorToInt64(int32) = %v, %v", v, err)
	}
	if v, err := TensorToInt64(Int64Tensor("i", []int64{2}, []int64{7, -9})); err != nil || v[0] != 7 || v[1] != -9 {
		t.Errorf("TensorToInt64 = %v, %v", v, err)
	}
	if v, err := TensorToInt32(Int32Tensor("i", nil, []int32{-4})); err != nil || v[0] != -4 {
		t.Errorf("TensorToInt32 = %v, %v", v, err)
	}
	bad := Float32Tensor("short", []int64{3}, []float32{1})
	if _, err := TensorToFloat32(bad); err == nil || !strings.Contains(err.Error(), "short") {
		t.Errorf("short tensor: %v", err)
	}
	if _, err := TensorToFloat32(i32); err == nil {
		t.Error("int32 read as float32 without error")
	}
	// ToTensor reads typed int32_data holding bytes-sized types.
	u8 := &onnxpb.TensorProto{Name: ptr("u"), DataType: ptr(int32(onnxpb.TensorProto_UINT8)), Dims: []int64{2}, Int32Data: []int32{255, 7}}
	tt, err := ToTensor(u8)
	if err != nil || !bytes.Equal(tt.Data, []byte{255, 7}) {
		t.Errorf("ToTensor(uint8) = %v, %v", tt, err)
	}
	back, err := FromTensor("u", tt)
	if err != nil || !bytes.Equal(back.RawData, []byte{255, 7}) {
		t.Errorf("FromTensor = %v, %v", back, err)
	}
}
