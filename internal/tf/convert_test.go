package tf

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/onnxrt"
	"github.com/openeas/openeas/internal/tensor"
	"github.com/openeas/openeas/internal/tf/tfpb"
)

// Reference is reference.json written by scripts/tfjs-to-frozen.mjs.
type reference struct {
	Model   string   `json:"model"`
	Nodes   int      `json:"nodes"`
	Inputs  []refVal `json:"inputs"`
	Outputs []refVal `json:"outputs"`
}

type refVal struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Data  string  `json:"data"`
}

func (r refVal) tensor(t *testing.T) *tensor.Tensor {
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	dt := tensor.Float
	if r.DType == "int32" {
		dt = tensor.Int32
	}
	return &tensor.Tensor{DType: dt, Shape: r.Shape, Data: b}
}

func fixturesDir() string {
	if d := os.Getenv("OPENEAS_CACHE"); d != "" {
		return filepath.Join(d, "tf")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "openeas", "tf")
}

func initORT(t *testing.T) {
	t.Helper()
	p := os.Getenv("OPENEAS_ORT_LIB")
	if p == "" {
		t.Skip("OPENEAS_ORT_LIB is not set; point it at libonnxruntime.so (scripts/fetch-deps.sh) to run converted models")
	}
	if err := ort.Init(p); err != nil {
		t.Fatalf("ort.Init(%s): %v", p, err)
	}
}

// fixture finds a fixture directory: the cache (scripts/tf-fixtures.sh, every fixture in both
// spellings) or testdata/ (committed: the small emotion classifier and the seed-shaped TextCNN,
// frozen.pb only).
func fixture(t *testing.T, name string) string {
	t.Helper()
	for _, d := range []string{filepath.Join(fixturesDir(), name), filepath.Join("../../testdata/tf", name)} {
		if _, err := os.Stat(filepath.Join(d, "reference.json")); err == nil {
			return d
		}
	}
	t.Skipf("fixture %s not found in testdata/tf or %s; run scripts/tf-fixtures.sh (make test does)", name, fixturesDir())
	return ""
}

func loadRef(t *testing.T, dir string) reference {
	b, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func f32s(t *testing.T, tt *tensor.Tensor) []float64 {
	t.Helper()
	out := make([]float64, len(tt.Data)/tt.DType.Size())
	for i := range out {
		switch tt.DType {
		case tensor.Float:
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[4*i:])))
		case tensor.Int32:
			out[i] = float64(int32(binary.LittleEndian.Uint32(tt.Data[4*i:])))
		case tensor.Int64:
			out[i] = float64(int64(binary.LittleEndian.Uint64(tt.Data[8*i:])))
		default:
			t.Fatalf("dtype %s", tt.DType)
		}
	}
	return out
}

// relErr is max |got - want| / max |want|: a norm-wise relative error that does not blow
// up on outputs near zero.
func relErr(got, want []float64) float64 {
	maxAbs, maxDiff := 0.0, 0.0
	for i := range want {
		maxAbs = math.Max(maxAbs, math.Abs(want[i]))
		maxDiff = math.Max(maxDiff, math.Abs(got[i]-want[i]))
	}
	return maxDiff / math.Max(maxAbs, 1e-12)
}

func TestFixturesMatchTFJS(t *testing.T) {
	initORT(t)
	cases := []struct {
		fixture    string
		transposes int // upper bound on Transpose nodes after layout conversion
	}{
		{"emotion", 1},
		{"textcnn", 2},
		{"blazeface", 5},
		{"nsfw-mobilenet-v2", 2},
		{"movenet-lightning", 10},
		{"facemesh-attention", 40},
	}
	for _, tc := range cases {
		for _, file := range []string{"frozen.pb", "frozen-unfused.pb"} {
			t.Run(tc.fixture+"/"+file, func(t *testing.T) {
				dir := fixture(t, tc.fixture)
				ref := loadRef(t, dir)
				pb, err := os.ReadFile(filepath.Join(dir, file))
				if err != nil {
					t.Skipf("%v (only frozen.pb is committed for small fixtures)", err)
				}
				res, err := Convert(context.Background(), pb, Options{})
				if err != nil {
					t.Fatalf("Convert: %v", err)
				}
				t.Logf("%s: %d TF nodes → %d ONNX nodes, %d Transpose", file, res.TFNodes, res.ONNXNodes, res.Transposes)
				if res.Transposes > tc.transposes {
					t.Errorf("%d Transpose nodes, want at most %d (layout conversion should not transpose around every op)", res.Transposes, tc.transposes)
				}
				path := filepath.Join(t.TempDir(), "model.onnx")
				if err := onnx.Save(res.Model, path, 0); err != nil {
					t.Fatal(err)
				}
				p, err := onnxrt.Open(path, processor.Runtime{})
				if err != nil {
					t.Fatalf("ONNX Runtime rejects the converted model: %v", err)
				}
				defer p.Close()
				feeds := map[string]*tensor.Tensor{}
				for _, in := range ref.Inputs {
					feeds[ONNXName(in.Name)] = in.tensor(t)
				}
				var names []string
				for _, o := range ref.Outputs {
					names = append(names, ONNXName(o.Name))
				}
				got, err := p.Predict(context.Background(), feeds, names)
				if err != nil {
					t.Fatalf("Predict: %v", err)
				}
				for _, o := range ref.Outputs {
					g := got[ONNXName(o.Name)]
					if g == nil {
						t.Fatalf("output %s missing", o.Name)
					}
					if !slices.Equal(g.Shape, o.Shape) {
						t.Errorf("output %s: shape %v, tfjs %v", o.Name, g.Shape, o.Shape)
						continue
					}
					want := f32s(t, o.tensor(t))
					if e := relErr(f32s(t, g), want); e > 1e-4 {
						t.Errorf("output %s: relative error %.3g > 1e-4", o.Name, e)
					} else {
						t.Logf("output %s %v: relative error %.3g", o.Name, o.Shape, e)
					}
				}
			})
		}
	}
}

func node(name, op string, inputs []string, attrs map[string]*tfpb.AttrValue) *tfpb.NodeDef {
	return &tfpb.NodeDef{Name: name, Op: op, Input: inputs, Attr: attrs}
}

func typeAttr(dt tfpb.DataType) *tfpb.AttrValue {
	return &tfpb.AttrValue{Value: &tfpb.AttrValue_Type{Type: dt}}
}

func TestUnsupportedOpsListed(t *testing.T) {
	g := &tfpb.GraphDef{Node: []*tfpb.NodeDef{
		node("x", "Placeholder", nil, map[string]*tfpb.AttrValue{"dtype": typeAttr(tfpb.DataType_DT_FLOAT)}),
		node("sw", "Switch", []string{"x", "x"}, nil),
		node("m", "Merge", []string{"sw", "sw:1"}, nil),
		node("fft", "FFT", []string{"m"}, nil),
		node("fft2", "FFT", []string{"fft"}, nil),
		node("y", "Relu", []string{"fft2"}, nil),
	}}
	b, _ := protoMarshal(g)
	_, err := Convert(context.Background(), b, Options{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("want UnsupportedError, got %v", err)
	}
	for _, want := range []string{"FFT in node(s) fft, fft2", "Merge (control flow) in node(s) m", "Switch (control flow) in node(s) sw"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Pruning to a supported part of the graph converts.
	if _, err := Convert(context.Background(), b, Options{Outputs: []string{"x:0"}}); err != nil {
		t.Errorf("pruned to x: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		pb   []byte
		opts Options
		want string
	}{
		{"not protobuf", []byte("not a graph at all \xff\xff"), Options{}, "decode GraphDef"},
		{"empty", nil, Options{}, "no nodes"},
		{"unknown output", mustMarshal(t, &tfpb.GraphDef{Node: []*tfpb.NodeDef{
			node("x", "Placeholder", nil, map[string]*tfpb.AttrValue{"dtype": typeAttr(tfpb.DataType_DT_FLOAT)})}}),
			Options{Outputs: []string{"nope:0"}}, `no node "nope"`},
		{"dangling input", mustMarshal(t, &tfpb.GraphDef{Node: []*tfpb.NodeDef{node("y", "Relu", []string{"ghost"}, nil)}}),
			Options{}, `node "ghost" is referenced but not defined`},
		{"AddN without inputs", mustMarshal(t, &tfpb.GraphDef{Node: []*tfpb.NodeDef{node("s", "AddN", nil, nil)}}),
			Options{}, `convert node "s" (AddN): AddN has no inputs; expected at least one`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Convert(context.Background(), tc.pb, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func mustMarshal(t *testing.T, g *tfpb.GraphDef) []byte {
	b, err := protoMarshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOutputsPruneAndNames(t *testing.T) {
	dir := fixture(t, "emotion")
	pb, err := os.ReadFile(filepath.Join(dir, "frozen.pb"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := Convert(context.Background(), pb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := full.Signature.Inputs; len(got) != 1 || got[0].Name != "input_1:0" || got[0].DType != "DT_FLOAT" || len(got[0].Shape) != 4 {
		t.Errorf("signature inputs %+v", got)
	}
	if got := full.Signature.Outputs; len(got) != 1 || got[0] != "Identity:0" {
		t.Errorf("signature outputs %v", got)
	}
	// Ask for an intermediate tensor: the graph is cut there and the output keeps its TF name.
	g, _ := ParseGraphDef(pb)
	var mid string
	for _, n := range g.Node {
		if n.Op == "MaxPool" {
			mid = n.Name
			break
		}
	}
	res, err := Convert(context.Background(), pb, Options{Outputs: []string{mid + ":0"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.TFNodes >= full.TFNodes || res.ONNXNodes >= full.ONNXNodes {
		t.Errorf("pruned graph has %d/%d nodes, full %d/%d", res.TFNodes, res.ONNXNodes, full.TFNodes, full.ONNXNodes)
	}
	if got := res.Model.Graph.Output[0].GetName(); got != mid {
		t.Errorf("output named %q, want the TF name %q", got, mid)
	}
}

// FuzzConvert: whatever the bytes, Convert returns a model or an error; it never panics
// (easd converts uploaded graphs in its own process).
func FuzzConvert(f *testing.F) {
	for _, p := range []string{"../../testdata/tf/emotion/frozen.pb", "../../testdata/tf/textcnn/frozen.pb"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		_, _ = Convert(context.Background(), b, Options{})
	})
}
