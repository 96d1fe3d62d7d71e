package quant

import (
	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// DynamicConfig selects what Dynamic rewrites.
type DynamicConfig struct {
	// PerChannel uses one weight scale per output column (else one per tensor).
	PerChannel bool
	// Skip names nodes to keep in float.
	Skip map[string]bool
	// InputMeans holds, per node name, the mean of each input feature (the K axis of the
	// activation) over the calibration or test samples. When set, the weight quantization
	// error is folded into the bias: bias += mean(x)·(W − deq(q(W))) (bias correction).
	InputMeans map[string][]float64
}

// dynamicSite is a MatMul or Gemm whose weight is a constant K×N matrix.
type dynamicSite struct {
	n      *onnxpb.NodeProto
	w      []float32 // K×N row-major (Gemm transB already undone)
	k, c   int
	bias   []float32 // N values, or nil
	weight string
}

// findDynamicSites lists MatMul/Gemm nodes with a constant 2-D float weight on the right.
func findDynamicSites(g *onnx.Graph) []dynamicSite {
	var sites []dynamicSite
	for _, n := range g.Proto.GetNode() {
		if n.GetDomain() != "" || len(n.GetInput()) < 2 || len(n.GetOutput()) != 1 {
			continue
		}
		switch n.GetOpType() {
		case "MatMul":
			w, dims, ok := constFloat(g, n.Input[1])
			if !ok || len(dims) != 2 {
				continue
			}
			if _, _, aConst := constFloat(g, n.Input[0]); aConst {
				continue // constant folding's job, not quantization's
			}
			sites = append(sites, dynamicSite{n: n, w: w, k: int(dims[0]), c: int(dims[1]), weight: n.Input[1]})
		case "Gemm":
			if attrInt(n, "transA", 0) != 0 || attrFloat(n, "alpha", 1) != 1 {
				continue
			}
			w, dims, ok := constFloat(g, n.Input[1])
			if !ok || len(dims) != 2 {
				continue
			}
			k, c := int(dims[0]), int(dims[1])
			if attrInt(n, "transB", 0) != 0 {
				t := make([]float32, len(w))
				for i := range c {
					for j := range k {
						t[j*c+i] = w[i*k+j]
					}
				}
				w, k, c = t, c, k
			}
			s := dynamicSite{n: n, w: w, k: k, c: c, weight: n.Input[1]}
			if len(n.Input) > 2 && n.Input[2] != "" {
				b, bdims, ok := constFloat(g, n.Input[2])
				if !ok || attrFloat(n, "beta", 1) != 1 || len(b) != c || (len(bdims) == 2 && bdims[0] != 1) || len(bdims) > 2 {
					continue
				}
				s.bias = b
			}
			sites = append(sites, s)
		}
	}
	return sites
}

// DynamicTargets lists the nodes Dynamic would rewrite, with their weight error.
func DynamicTargets(m *onnxpb.ModelProto, perChannel bool) []Target {
	g := onnx.ModelGraph(m)
	var out []Target
	for _, s := range findDynamicSites(g) {
		_, _, rel := quantizeSymmetric(s.w, s.k, s.c, perChannel)
		out = append(out, Target{Node: s.n.GetName(), Op: s.n.GetOpType(), Input: s.n.Input[0], Output: s.n.Output[0], WeightError: rel})
	}
	return out
}

// Dynamic returns a copy of m (whose nodes must be named, see NameNodes) where each
// quantizable MatMul/Gemm not in cfg.Skip becomes com.microsoft.DynamicQuantizeMatMul with
// int8 symmetric weights (7-bit on CPUs where NeedsReducedRange); activations are quantized at
// run time. It returns the rewritten node names.
func Dynamic(m *onnxpb.ModelProto, cfg DynamicConfig) (*onnxpb.ModelProto, []string, error) {
	out := Clone(m)
	g := onnx.ModelGraph(out)
	// ORT's u8·s8 kernels on x86 without VNNI add pairs of products in int16, which saturates
	// with 8-bit weights (a random BERT-base encoder fell to cosine 0.986): use 7 bits there.
	qmax := 127.0
	if NeedsReducedRange() {
		qmax = 63
	}
	var done []string
	for _, s := range findDynamicSites(g) {
		name := s.n.GetName()
		if cfg.Skip[name] {
			continue
		}
		q, scales, _ := quantizeSymmetricMax(s.w, s.k, s.c, cfg.PerChannel, qmax)
		bias := s.bias
		if means := cfg.InputMeans[name]; len(means) == s.k {
			bias = correctBias(bias, s.w, q, scales, means, s.k, s.c)
		}
		wName := g.UniqueName(s.weight + "_quantized")
		sName := g.UniqueName(s.weight + "_scale")
		g.AddInitializer(int8Tensor(wName, []int64{int64(s.k), int64(s.c)}, q))
		scaleDims := []int64{}
		if cfg.PerChannel {
			scaleDims = []int64{int64(s.c)}
		}
		g.AddInitializer(onnx.Float32Tensor(sName, scaleDims, scales))
		inputs := []string{s.n.Input[0], wName, sName}
		if bias != nil {
			bName := g.UniqueName(name + "_bias")
			g.AddInitializer(onnx.Float32Tensor(bName, []int64{int64(s.c)}, bias))
			inputs = append(inputs, "", bName) // no weight zero point: symmetric
		}
		repl := node("DynamicQuantizeMatMul", MSDomain, name+"_int8", inputs, []string{s.n.Output[0]})
		g.InsertNodeAfter(s.n, repl)
		g.RemoveNodes(s.n)
		done = append(done, name)
	}
	if len(done) > 0 {
		ensureMSOpset(g)
		g.RemoveDeadNodes()
		g.RemoveUnusedInitializers()
	}
	return out, done, nil
}

// correctBias folds the expected weight quantization error into the bias:
// E[x·W] − E[x·Ŵ] = mean(x)·(W − Ŵ) per output column.
func correctBias(bias, w []float32, q []int8, scales []float32, means []float64, k, c int) []float32 {
	out := make([]float32, c)
	copy(out, bias)
	for col := range c {
		s := scales[0]
		if len(scales) == c {
			s = scales[col]
		}
		var d float64
		for row := range k {
			i := row*c + col
			d += means[row] * (float64(w[i]) - float64(q[i])*float64(s))
		}
		out[col] += float32(d)
	}
	return out
}
