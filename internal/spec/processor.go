package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Processor families.
const (
	FamilyONNX       = "onnx"
	FamilyPyTorch    = "pytorch"
	FamilyTensorFlow = "tensorflow"
)

// ProcessorInfo describes a processor name.
type ProcessorInfo struct {
	// Name is the canonical name ("onnxruntime_cpu", "pytorch_cpu", ...): aliases and
	// bare family names resolve to it, and bundles record it.
	Name string
	// Family selects the request formats: FamilyONNX, FamilyPyTorch or FamilyTensorFlow.
	Family string
	// Runtime is what serves it: "onnxruntime", "libtorch", or "onnxruntime" after a
	// GraphDef→ONNX conversion for TensorFlow.
	Runtime string
	// GPU reports whether the processor asks for a GPU. Whether the installation has one
	// for it is the deploy layer's question (it may serve the processor on CPU instead:
	// OnCPU).
	GPU bool
}

// OnCPU returns the CPU processor of the same family and version (p itself when p is one):
// what serves a GPU processor on a host without a GPU runtime for it.
func (p ProcessorInfo) OnCPU() ProcessorInfo {
	if !p.GPU {
		return p
	}
	if c, ok := processorTable[strings.Replace(p.Name, "_gpu", "_cpu", 1)]; ok {
		return c
	}
	return p
}

var (
	pytorchVersions    = []string{"1.6", "1.7", "1.9", "1.10", "1.13"}
	tensorflowVersions = []string{"1.12", "1.14", "1.15", "2.4", "2.7"}
)

// processorTable lists every known name, canonical or alias, with what it resolves to.
// Built once from constants; never modified.
var processorTable = buildProcessorTable()

func buildProcessorTable() map[string]ProcessorInfo {
	t := map[string]ProcessorInfo{}
	onnxCPU := ProcessorInfo{Name: "onnxruntime_cpu", Family: FamilyONNX, Runtime: "onnxruntime"}
	onnxGPU := ProcessorInfo{Name: "onnxruntime_gpu", Family: FamilyONNX, Runtime: "onnxruntime", GPU: true}
	for _, n := range []string{"onnxruntime_cpu", "onnx_cpu", "onnxruntime", "onnx"} {
		t[n] = onnxCPU
	}
	for _, n := range []string{"onnxruntime_gpu", "onnx_gpu"} {
		t[n] = onnxGPU
	}
	for _, dev := range []string{"cpu", "gpu"} {
		// Every PyTorch version is served by the one libtorch the installation has (the
		// worker reports which). Whether libtorch is installed is the deploy layer's
		// question (internal/torch/torchinstall): this table stays pure.
		torchInfo := ProcessorInfo{Name: "pytorch_" + dev, Family: FamilyPyTorch, Runtime: "libtorch", GPU: dev == "gpu"}
		t["pytorch_"+dev] = torchInfo
		for _, v := range pytorchVersions {
			t["pytorch_"+dev+"_"+v] = torchInfo
		}
		for _, v := range tensorflowVersions {
			n := "tensorflow_" + dev + "_" + v
			// TF graphs are converted to ONNX at deploy time (internal/tf).
			t[n] = ProcessorInfo{Name: n, Family: FamilyTensorFlow, Runtime: "onnxruntime", GPU: dev == "gpu"}
		}
	}
	// Bare family names mean these versions in EAS.
	t["pytorch"] = t["pytorch_cpu"]
	t["tensorflow"] = t["tensorflow_cpu_1.15"]
	return t
}

// KnownProcessors returns every accepted processor name (aliases included), sorted.
func KnownProcessors() []string {
	names := make([]string, 0, len(processorTable))
	for n := range processorTable {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ResolveProcessor maps a processor name to its canonical form. Names are matched
// exactly (EAS's are lowercase). An unknown name is an error listing the known ones.
func ResolveProcessor(name string) (ProcessorInfo, error) {
	if p, ok := processorTable[name]; ok {
		return p, nil
	}
	msg := fmt.Sprintf("unknown processor %q", name)
	if near := nearestProcessor(name); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return ProcessorInfo{}, fmt.Errorf("%s; known: %s", msg, knownProcessorsText)
}

// knownProcessorsText lists the known names compactly, for error messages.
var knownProcessorsText = "onnxruntime_cpu, onnxruntime_gpu, " +
	"pytorch_{cpu,gpu}[_{" + strings.Join(pytorchVersions, ",") + "}], " +
	"tensorflow_{cpu,gpu}_{" + strings.Join(tensorflowVersions, ",") + "}, " +
	"and the aliases onnx, onnx_cpu, onnx_gpu, onnxruntime, pytorch (pytorch_cpu), tensorflow (tensorflow_cpu_1.15)"

func nearestProcessor(name string) string {
	norm := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	best, bestDist := "", 3
	for _, n := range KnownProcessors() {
		if d := editDistance(norm, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}
