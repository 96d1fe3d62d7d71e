package quant

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/blade/passes"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/tensor"
)

const clsModel = "../../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx"

// needORT initializes ONNX Runtime from OPENEAS_ORT_LIB or skips the test.
func needORT(t *testing.T) {
	t.Helper()
	lib := os.Getenv("OPENEAS_ORT_LIB")
	if lib == "" {
		t.Skip("OPENEAS_ORT_LIB is not set: skipping tests that need the ONNX Runtime library (run scripts/fetch-deps.sh)")
	}
	if err := ort.Init(lib); err != nil {
		t.Fatalf("ort.Init(%s): %v", lib, err)
	}
}

type feed = map[string]*tensor.Tensor

// uniformTensor fills shape with values uniform in [lo, hi) from seed.
func uniformTensor(shape []int64, lo, hi float64, seed uint64) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 11))
	n := tensor.NumElements(shape)
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(lo+(hi-lo)*r.Float64())))
	}
	return &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: b}
}

func saveTemp(t *testing.T, m *onnxpb.ModelProto, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := onnx.Save(m, p, 0); err != nil {
		t.Fatal(err)
	}
	return p
}

// runAll runs the model at path on every feed and returns the named outputs (all when nil).
func runAll(t *testing.T, path string, feeds []feed, outputs []string, level string) []feed {
	t.Helper()
	s, err := ort.NewSession(path, ort.SessionOptions{GraphOptimizationLevel: level})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	defer s.Close()
	var res []feed
	for i, f := range feeds {
		out, err := s.Run(context.Background(), f, outputs)
		if err != nil {
			t.Fatalf("run %s on sample %d: %v", path, i, err)
		}
		res = append(res, out)
	}
	return res
}

// calibrate runs m with every activation Static needs exposed and returns the calibration.
func calibrate(t *testing.T, m *onnxpb.ModelProto, feeds []feed, percentile float64, seed map[string]Range) *Calibration {
	t.Helper()
	aug := Clone(m)
	names := ExposeTensors(aug, StaticActivations(m))
	path := saveTemp(t, aug, "stats.onnx")
	c := NewCollector()
	outs := runAll(t, path, feeds, names, "")
	for i, o := range outs {
		for _, n := range names {
			c.Add(n, o[n])
		}
		for n, v := range feeds[i] {
			c.Add(n, v)
		}
	}
	if percentile > 0 {
		for i, o := range outs {
			for _, n := range names {
				c.AddHistogram(n, o[n])
			}
			for n, v := range feeds[i] {
				c.AddHistogram(n, v)
			}
		}
	}
	cal, err := c.Calibration(percentile, seed)
	if err != nil {
		t.Fatal(err)
	}
	return cal
}

// optimizedOps saves ORT's optimized graph of path (level extended) and counts its op types.
func optimizedOps(t *testing.T, path string) map[string]int {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ort-optimized.onnx")
	s, err := ort.NewSession(path, ort.SessionOptions{GraphOptimizationLevel: "extended", OptimizedModelPath: out})
	if err != nil {
		t.Fatalf("optimize %s: %v", path, err)
	}
	s.Close()
	m, err := onnx.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range m.GetGraph().GetNode() {
		ops[n.GetOpType()]++
	}
	return ops
}

func cosine(a, b *tensor.Tensor) float64 {
	va, _ := float32s(a)
	vb, _ := float32s(b)
	var dot, na, nb float64
	for i := range va {
		dot += float64(va[i]) * float64(vb[i])
		na += float64(va[i]) * float64(va[i])
		nb += float64(vb[i]) * float64(vb[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

func argmaxRows(t *tensor.Tensor) []int {
	v, _ := float32s(t)
	cols := int(t.Shape[len(t.Shape)-1])
	var out []int
	for r := 0; r+cols <= len(v); r += cols {
		best := 0
		for j := 1; j < cols; j++ {
			if v[r+j] > v[r+best] {
				best = j
			}
		}
		out = append(out, best)
	}
	return out
}

func clsPrepared(t *testing.T) *onnxpb.ModelProto {
	t.Helper()
	if _, err := os.Stat(clsModel); err != nil {
		t.Skipf("PaddleOCR models not fetched (scripts/fetch-deps.sh): %v", err)
	}
	m, err := onnx.Load(clsModel)
	if err != nil {
		t.Fatal(err)
	}
	m = NameNodes(m)
	if _, err := passes.Run(onnx.ModelGraph(m), passes.Lossless()); err != nil {
		t.Fatal(err)
	}
	return m
}

func clsFeeds(n int, seed uint64) []feed {
	var out []feed
	for i := range n {
		out = append(out, feed{"x": uniformTensor([]int64{1, 3, 48, 192}, -1, 1, seed+uint64(i))})
	}
	return out
}

func TestStaticOnOCRClassifier(t *testing.T) {
	needORT(t)
	m := clsPrepared(t)
	cal := calibrate(t, m, clsFeeds(8, 100), 0, map[string]Range{"x": {-1, 1}})
	qm, done, err := Static(m, StaticConfig{Calibration: cal, BiasCorrection: true, ReduceRange: NeedsReducedRange()})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) == 0 {
		t.Fatal("nothing quantized")
	}
	fp := saveTemp(t, m, "float.onnx")
	qp := saveTemp(t, qm, "int8.onnx")
	ops := optimizedOps(t, qp)
	t.Logf("quantized %d nodes; ORT optimized ops: %v", len(done), ops)
	if ops["QLinearConv"] == 0 {
		t.Errorf("ORT formed no QLinearConv from the QDQ model: %v", ops)
	}
	test := clsFeeds(16, 900)
	ref := runAll(t, fp, test, nil, "")
	got := runAll(t, qp, test, nil, "all")
	agree, rows := 0, 0
	for i := range test {
		for name, r := range ref[i] {
			if c := cosine(got[i][name], r); c < 0.99 {
				t.Errorf("sample %d output %s: cosine %.5f < 0.99", i, name, c)
			}
			// Random inputs put this 2-class model near a tie: a flipped class only counts
			// against it where the float scores are clearly apart.
			a, b := argmaxRows(got[i][name]), argmaxRows(r)
			rv, _ := float32s(r)
			for k := range a {
				rows++
				if a[k] == b[k] {
					agree++
				} else if margin := math.Abs(float64(rv[2*k] - rv[2*k+1])); margin > 0.1 {
					t.Errorf("sample %d row %d: class %d became %d with a float margin of %.3f", i, k, b[k], a[k], margin)
				}
			}
		}
	}
	t.Logf("top-1 agreement %d/%d", agree, rows)
}

// TestStaticConvNet quantizes the committed small CNN (testdata/gen_convnet.py): every Conv,
// the residual Add, the pools and the Gemm become QLinear (MaxPool: 8-bit) ops in ORT's optimized graph, the
// outputs keep cosine ≥ 0.99 and the same class, and the output model is byte-identical
// across runs.
func TestStaticConvNet(t *testing.T) {
	needORT(t)
	m, err := onnx.Load("testdata/convnet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m = NameNodes(m)
	var feeds []feed
	for i := range 16 {
		feeds = append(feeds, feed{"x": uniformTensor([]int64{1, 3, 16, 16}, -1, 1, uint64(i))})
	}
	for _, pct := range []float64{0, 99.99} {
		cal := calibrate(t, m, feeds[:8], pct, map[string]Range{"x": {-1, 1}})
		cfg := StaticConfig{Calibration: cal, BiasCorrection: true, ReduceRange: NeedsReducedRange()}
		qm, done, err := Static(m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"conv1", "conv2", "residual", "pool", "conv3", "gap", "fc"}
		if !slicesEqualSet(done, want) {
			t.Errorf("percentile %g: quantized %v, want %v", pct, done, want)
		}
		again, _, _ := Static(m, cfg)
		b1, _ := onnx.Encode(qm)
		b2, _ := onnx.Encode(again)
		if string(b1) != string(b2) {
			t.Error("two runs of Static gave different model bytes")
		}
		qp := saveTemp(t, qm, "int8.onnx")
		ops := optimizedOps(t, qp)
		t.Logf("percentile %g: ORT ops %v", pct, ops)
		if ops["QLinearConv"] != 3 || ops["QLinearAdd"] != 1 || ops["Conv"] != 0 {
			t.Errorf("percentile %g: ORT optimized graph %v, want 3 QLinearConv, 1 QLinearAdd, no float Conv", pct, ops)
		}
		ref := runAll(t, saveTemp(t, m, "float.onnx"), feeds[8:], nil, "")
		got := runAll(t, qp, feeds[8:], nil, "all")
		for i := range ref {
			if c := cosine(got[i]["y"], ref[i]["y"]); c < 0.99 {
				t.Errorf("percentile %g sample %d: cosine %.5f", pct, i, c)
			}
		}
	}
}

func slicesEqualSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	set := map[string]bool{}
	for _, x := range a {
		set[x] = true
	}
	for _, x := range b {
		if !set[x] {
			return false
		}
	}
	return true
}

// TestStaticClampsDenormalChannels: a channel whose weights are denormal with a real bias gets
// a weight scale large enough for its int32 bias, instead of an overflowing one.
func TestStaticClampsDenormalChannels(t *testing.T) {
	m, err := onnx.Load("testdata/convnet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m = NameNodes(m)
	g := onnx.ModelGraph(m)
	w := g.Initializer("w1")
	v, _ := onnx.TensorToFloat32(w)
	for i := range 27 { // output channel 0: 3×3×3 denormals
		v[i] = 1e-41
	}
	*w = *onnx.Float32Tensor("w1", w.GetDims(), v)
	cal := &Calibration{Ranges: map[string]Range{}}
	for _, a := range StaticActivations(m) {
		cal.Ranges[a] = Range{-1, 1}
	}
	qm, done, err := Static(m, StaticConfig{Calibration: cal, Skip: map[string]bool{"conv2": true, "conv3": true, "fc": true, "residual": true, "gap": true, "pool": true}})
	if err != nil {
		t.Fatalf("denormal channel: %v", err)
	}
	if len(done) != 1 {
		t.Fatalf("quantized %v", done)
	}
	for _, init := range qm.GetGraph().GetInitializer() {
		if init.GetName() == "conv1_bias_quantized" {
			b, _ := onnx.TensorToInt32(init)
			if b[0] == 0 || b[0] > 1<<30 || b[0] < -(1<<30) {
				t.Errorf("int32 bias of the denormal channel = %d", b[0])
			}
			return
		}
	}
	t.Error("no int32 bias for conv1")
}

// TestStaticResidualReluAbsorbed: in a residual block Add → Relu (as in ResNet), the Relu ends
// the Add's site: its Q goes after the Relu, ORT drops the Relu, and the block becomes one
// QLinearAdd with no Dequantize/Quantize pair around a float Relu.
func TestStaticResidualReluAbsorbed(t *testing.T) {
	needORT(t)
	ir, v := int64(8), int64(13)
	weight := func(name string, shape []int64, seed uint64) *onnxpb.TensorProto {
		tp, err := onnx.FromTensor(name, uniformTensor(shape, -0.5, 0.5, seed))
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	g := &onnxpb.GraphProto{
		Node: []*onnxpb.NodeProto{
			node("Conv", "", "conv_a", []string{"x", "wa"}, []string{"a"}),
			node("Conv", "", "conv_b", []string{"x", "wb"}, []string{"b"}),
			node("Add", "", "residual", []string{"a", "b"}, []string{"s"}),
			node("Relu", "", "relu", []string{"s"}, []string{"r"}),
			node("Conv", "", "conv_c", []string{"r", "wc"}, []string{"y"}),
		},
		Initializer: []*onnxpb.TensorProto{
			weight("wa", []int64{4, 3, 3, 3}, 1), weight("wb", []int64{4, 3, 3, 3}, 2), weight("wc", []int64{2, 4, 1, 1}, 3),
		},
	}
	g.Input = []*onnxpb.ValueInfoProto{onnx.TensorValueInfo(onnx.Float32Tensor("x", []int64{1, 3, 8, 8}, nil))}
	g.Output = []*onnxpb.ValueInfoProto{onnx.TensorValueInfo(onnx.Float32Tensor("y", []int64{1, 2, 6, 6}, nil))}
	m := NameNodes(&onnxpb.ModelProto{IrVersion: &ir, Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: &v}}})
	var feeds []feed
	for i := range 12 {
		feeds = append(feeds, feed{"x": uniformTensor([]int64{1, 3, 8, 8}, -1, 1, uint64(10+i))})
	}
	cal := calibrate(t, m, feeds[:8], 0, map[string]Range{"x": {-1, 1}})
	qm, done, err := Static(m, StaticConfig{Calibration: cal, ReduceRange: NeedsReducedRange()})
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqualSet(done, []string{"conv_a", "conv_b", "residual", "conv_c"}) {
		t.Errorf("quantized %v", done)
	}
	qp := saveTemp(t, qm, "int8.onnx")
	ops := optimizedOps(t, qp)
	if ops["QLinearAdd"] != 1 || ops["Relu"] != 0 || ops["QLinearConv"] != 3 || ops["DequantizeLinear"] > 1 {
		t.Errorf("ORT optimized graph %v: want the residual Add+Relu as one QLinearAdd, no float Relu, one DequantizeLinear (the output)", ops)
	}
	ref := runAll(t, saveTemp(t, m, "float.onnx"), feeds[8:], nil, "")
	got := runAll(t, qp, feeds[8:], nil, "all")
	for i := range ref {
		if c := cosine(got[i]["y"], ref[i]["y"]); c < 0.99 {
			t.Errorf("sample %d: cosine %.5f", i, c)
		}
	}
}
