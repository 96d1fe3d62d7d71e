package auxdata

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/tensor"
)

func f32s(t *tensor.Tensor) []float32 {
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out
}

func i64s(t *tensor.Tensor) []int64 {
	out := make([]int64, len(t.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out
}

func read(t *testing.T, name string) *Dataset {
	t.Helper()
	ds, err := Read(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestSeedTensorFlowNpy(t *testing.T) {
	ds := read(t, "tf_seed.npy")
	if ds.Format != FormatNpyPickle || len(ds.Samples) != 10 {
		t.Fatalf("format %s, %d samples; want npy-pickle, 10", ds.Format, len(ds.Samples))
	}
	sig := []tensor.Info{
		{Name: "image_placeholder", DType: tensor.Float, Shape: []int64{-1, 3, 4, 4}},
		{Name: "threshold_placeholder", DType: tensor.Float, Shape: []int64{}},
	}
	feeds, err := ds.Bind(sig)
	if err != nil {
		t.Fatal(err)
	}
	img, thr := feeds[9]["image_placeholder"], feeds[9]["threshold_placeholder"]
	if !slices.Equal(img.Shape, []int64{2, 3, 4, 4}) || f32s(img)[95] != 1 || len(f32s(img)) != 96 {
		t.Errorf("image %v %v", img.Shape, f32s(img)[:4])
	}
	if len(thr.Shape) != 0 || f32s(thr)[0] != 0.5 {
		t.Errorf("threshold %v %v", thr.Shape, f32s(thr))
	}
	// The scalar does not fit a non-scalar input.
	sig[1].Shape = []int64{1}
	_, err = ds.Bind(sig)
	want := `sample 0: input "threshold_placeholder": expected float32[1], found float32[]`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestVariedFeeds(t *testing.T) {
	ds := read(t, "tf_varied.npy")
	if len(ds.Samples) != 3 {
		t.Fatalf("%d samples", len(ds.Samples))
	}
	s := ds.Samples[2].Named
	if got := f32s(s["x:0"]); !slices.Equal(got, []float32{2, 3, 4, 5, 6, 7}) || !slices.Equal(s["x:0"].Shape, []int64{2, 3}) {
		t.Errorf("x:0 = %v %v", s["x:0"].Shape, got)
	}
	if got := i64s(s["ids"]); !slices.Equal(got, []int64{2, 3}) {
		t.Errorf("ids = %v", got)
	}
	if s["mask"].DType != tensor.Bool || string(s["mask"].Data) != "\x01\x00\x00" {
		t.Errorf("mask = %v %q", s["mask"].DType, s["mask"].Data)
	}
	if !slices.Equal(s["words"].Strings, []string{"ab", "cé"}) {
		t.Errorf("words = %q", s["words"].Strings)
	}
	if sc := s["scale"]; sc.DType != tensor.Double || math.Float64frombits(binary.LittleEndian.Uint64(sc.Data)) != 0.5 {
		t.Errorf("scale = %v %v", sc.DType, sc.Data)
	}
	if n := s["n"]; n.DType != tensor.Int32 || binary.LittleEndian.Uint32(n.Data) != 2 {
		t.Errorf("n = %v %v", n.DType, n.Data)
	}
}

func TestPlainArrays(t *testing.T) {
	cases := []struct {
		file   string
		format string
		dtype  tensor.DType
		shape  []int64
		data   string // little-endian bytes
	}{
		{"plain_f32.npy", FormatNpy, tensor.Float, []int64{2, 3}, le32f(0, 1, 2, 3, 4, 5)},
		// Fortran order becomes C order: [[0,1,2],[3,4,5]].
		{"fortran_i16.npy", FormatNpy, tensor.Int16, []int64{2, 3}, "\x00\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00"},
		{"bigendian_f8.npy", FormatNpy, tensor.Double, []int64{4}, le64f(0, 1, 2, 3)},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			ds := read(t, c.file)
			if ds.Format != c.format || len(ds.Samples) != 1 || len(ds.Samples[0].Positional) != 1 {
				t.Fatalf("format %s samples %+v", ds.Format, ds.Samples)
			}
			v := ds.Samples[0].Positional[0]
			if v.DType != c.dtype || !slices.Equal(v.Shape, c.shape) || string(v.Data) != c.data {
				t.Errorf("got %v %v %x", v.DType, v.Shape, v.Data)
			}
		})
	}
}

func le32f(v ...float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return string(b)
}

func le64f(v ...float64) string {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return string(b)
}

func TestNpz(t *testing.T) {
	named := read(t, "named.npz")
	feeds, err := named.Bind([]tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{1, 4}}, {Name: "k", DType: tensor.Int64, Shape: []int64{}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(feeds) != 1 || !slices.Equal(f32s(feeds[0]["x"]), []float32{0, 1, 2, 3}) || i64s(feeds[0]["k"])[0] != 3 {
		t.Errorf("named.npz feeds %v", feeds)
	}
	pos := read(t, "positional.npz")
	if p := pos.Samples[0].Positional; len(p) != 2 || p[0].DType != tensor.Float || p[1].DType != tensor.Int32 || !slices.Equal(p[1].Shape, []int64{3}) {
		t.Errorf("positional.npz = %+v", pos.Samples)
	}
	// stacked.npz: x is [3,4]; a model taking [4] gets 3 samples.
	st := read(t, "stacked.npz")
	feeds, err = st.Bind([]tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{4}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(feeds) != 3 || !slices.Equal(f32s(feeds[2]["x"]), []float32{8, 9, 10, 11}) {
		t.Errorf("stacked feeds: %d, last %v", len(feeds), f32s(feeds[len(feeds)-1]["x"]))
	}
	// A model taking [?,4] gets the whole array as one sample.
	feeds, err = st.Bind([]tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{-1, 4}}})
	if err != nil || len(feeds) != 1 {
		t.Errorf("dynamic batch: %d feeds, %v", len(feeds), err)
	}
}

func TestTorchPth(t *testing.T) {
	ds := read(t, "torch_seed.pth")
	if ds.Format != FormatPth || len(ds.Samples) != 10 {
		t.Fatalf("format %s, %d samples", ds.Format, len(ds.Samples))
	}
	feeds, err := ds.Bind([]tensor.Info{{Name: "image", DType: tensor.Float, Shape: []int64{2, 3, 4, 4}}, {Name: "threshold", DType: tensor.Float, Shape: []int64{}}})
	if err != nil {
		t.Fatal(err)
	}
	if f32s(feeds[0]["threshold"])[0] != 0.5 || f32s(feeds[3]["image"])[50] != 1 {
		t.Error("wrong values in torch_seed.pth")
	}
	views := read(t, "torch_views.pth")
	s := views.Samples[0].Positional
	// base = arange(24).reshape(4,6); view = base[1:, ::2].t()
	want := []float32{6, 12, 18, 8, 14, 20, 10, 16, 22}
	if !slices.Equal(s[0].Shape, []int64{3, 3}) || !slices.Equal(f32s(s[0]), want) {
		t.Errorf("view = %v %v, want %v", s[0].Shape, f32s(s[0]), want)
	}
	if !slices.Equal(i64s(s[1]), []int64{3, 4, 5, 6}) {
		t.Errorf("ids = %v", i64s(s[1]))
	}
	s = views.Samples[1].Positional
	if !slices.Equal(f32s(s[0]), []float32{0, 1, 2, 3, 4, 5}) || s[1].DType != tensor.Bool || string(s[1].Data) != "\x01\x00" {
		t.Errorf("sample 1 = %v %v %q", f32s(s[0]), s[1].DType, s[1].Data)
	}
}

func TestBindErrors(t *testing.T) {
	ds := read(t, "tf_varied.npy")
	full := []tensor.Info{
		{Name: "x", DType: tensor.Float, Shape: []int64{2, 3}},
		{Name: "ids", DType: tensor.Int64, Shape: []int64{1, 2}},
		{Name: "mask", DType: tensor.Bool, Shape: []int64{3}},
		{Name: "words", DType: tensor.String, Shape: []int64{2}},
		{Name: "scale", DType: tensor.Double, Shape: []int64{}},
		{Name: "n", DType: tensor.Int32, Shape: []int64{}},
	}
	if _, err := ds.Bind(full); err != nil {
		t.Fatalf("full signature: %v", err)
	}
	with := func(k int, info tensor.Info) []tensor.Info {
		s := slices.Clone(full)
		s[k] = info
		return s
	}
	// A dtype the model does not declare (Invalid) takes whatever the data holds.
	if feeds, err := ds.Bind(with(1, tensor.Info{Name: "ids", Shape: []int64{1, 2}})); err != nil || feeds[0]["ids"].DType != tensor.Int64 {
		t.Fatalf("undeclared dtype: %v", err)
	}
	cases := []struct {
		name string
		sig  []tensor.Info
		want string
	}{
		{"dtype", with(1, tensor.Info{Name: "ids", DType: tensor.Int32, Shape: []int64{1, 2}}), `sample 0: input "ids": expected int32[1,2], found int64[1,2]`},
		{"shape", with(0, tensor.Info{Name: "x", DType: tensor.Float, Shape: []int64{3, 2}}), `sample 0: input "x": expected float32[3,2], found float32[2,3]`},
		{"missing", append(slices.Clone(full), tensor.Info{Name: "extra", DType: tensor.Float}), `sample 0: input "extra": missing`},
		{"unmatched key", full[1:], `sample 0: "x:0" matches no model input`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ds.Bind(c.sig)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
	pth := read(t, "torch_seed.pth")
	if _, err := pth.Bind(full[:1]); err == nil || !strings.Contains(err.Error(), "sample 0: 2 values for 1 model inputs") {
		t.Errorf("positional count: %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile("testdata/tf_seed.npy")
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"x.npy", []byte("not numpy"), "bad magic"},
		{"x.bin", []byte("hello"), "unknown format"},
		{"trunc.npy", good[:200], "npy"},
		{"hdr.npy", []byte("\x93NUMPY\x01\x00\x10\x00{'descr': 5}    \n"), "'descr' must be a string"},
		{"evil.npy", npyObject("\x80\x03cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."), "os.system"},
		{"empty.npz", []byte("PK\x05\x06" + strings.Repeat("\x00", 18)), "no arrays"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			os.WriteFile(p, c.data, 0o644)
			_, err := Read(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
				t.Errorf("error %v, want one naming %s and saying %q", err, c.name, c.want)
			}
		})
	}
}

// npyObject wraps a pickle in an object-array .npy header.
func npyObject(pickle string) []byte {
	h := "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	return append(append(b, h...), pickle...)
}
