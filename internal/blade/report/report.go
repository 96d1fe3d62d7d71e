// Package report holds Blade's optimization report: the JSON shape of the real PAI-Blade report
// (software_context, hardware_context, user_config, diagnosis, optimizations, overall,
// model_info, compatibility_list) plus per-candidate timings and per-output accuracy, and the
// human table printed at the end of a run.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is report.json.
type Report struct {
	SoftwareContext   map[string]string `json:"software_context"`
	HardwareContext   Hardware          `json:"hardware_context"`
	UserConfig        any               `json:"user_config"`
	Diagnosis         Diagnosis         `json:"diagnosis"`
	Optimizations     []Optimization    `json:"optimizations"`
	Overall           Overall           `json:"overall"`
	ModelInfo         ModelInfo         `json:"model_info"`
	CompatibilityList []Compatibility   `json:"compatibility_list"`
	// Candidates are every candidate tried, in the order tried, with timing and accuracy.
	Candidates []Candidate `json:"candidates"`
	// Chosen names the shipped candidate ("baseline" when nothing beat the original).
	Chosen string `json:"chosen"`
	// Runtime is the session settings shipped (the content of runtime.json).
	Runtime any `json:"runtime"`
}

// Hardware describes the machine the timings were taken on.
type Hardware struct {
	CPUModel string   `json:"cpu_model"`
	Cores    int      `json:"cores"`
	Flags    []string `json:"flags"` // the ISA flags that matter to INT8/fp32 kernels
	Device   string   `json:"device"`
	// RequestedDevice is the device the user asked for when it differs from Device (a GPU
	// request served on CPU; see blade.PluginDevice).
	RequestedDevice string `json:"requested_device,omitempty"`
}

// Diagnosis says what blade learned about the model and its inputs.
type Diagnosis struct {
	Model string `json:"model"`
	// TestDataSource is "test_data" (user file) or "synthetic" (made from the signature).
	TestDataSource string `json:"test_data_source"`
	// ShapeVariation is "fixed", "dynamic" or "specialized:<shapes>".
	ShapeVariation string   `json:"shape_variation"`
	Message        string   `json:"message"`
	TestDataInfo   DataInfo `json:"test_data_info"`
}

// DataInfo summarizes the samples used for verification and timing.
type DataInfo struct {
	File    string              `json:"file,omitempty"`
	Samples int                 `json:"samples"`
	Shapes  map[string][]int64  `json:"shapes"` // first sample's shape per input
	DTypes  map[string]string   `json:"dtypes"`
	Ranges  map[string][2]int64 `json:"-"`
}

// Optimization is one entry of the Blade-style optimizations list.
type Optimization struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"` // "effective", "ineffective", "rejected", "failed", "skipped"
	Speedup string  `json:"speedup"`
	PreRun  string  `json:"pre_run"`  // e.g. "10.00 ms"
	PostRun string  `json:"post_run"` // e.g. "4.38 ms"
	Reason  string  `json:"reason,omitempty"`
	Ratio   float64 `json:"-"`
}

// Overall is the headline: baseline and optimized latency.
type Overall struct {
	Baseline    string  `json:"baseline"`
	Optimized   string  `json:"optimized"`
	Speedup     string  `json:"speedup"`
	BaselineMS  float64 `json:"baseline_ms"`
	OptimizedMS float64 `json:"optimized_ms"`
}

// ModelInfo describes the model's format and signature.
type ModelInfo struct {
	Framework string   `json:"framework"`
	File      string   `json:"file"`
	Opset     int64    `json:"opset"`
	Producer  string   `json:"producer,omitempty"`
	Nodes     int      `json:"nodes"`
	Inputs    []Tensor `json:"inputs"`
	Outputs   []Tensor `json:"outputs"`
	SizeBytes int64    `json:"size_bytes"`
}

// Tensor is one input or output in model_info.
type Tensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape string `json:"shape"`
}

// Compatibility records what the shipped model needs at run time.
type Compatibility struct {
	Runtime string `json:"runtime"`
	Version string `json:"version"`
	Note    string `json:"note,omitempty"`
}

// Timing is a latency distribution in milliseconds.
type Timing struct {
	Runs     int     `json:"runs"`
	MedianMS float64 `json:"median_ms"`
	MinMS    float64 `json:"min_ms"`
	MaxMS    float64 `json:"max_ms"`
}

// OutputAccuracy compares one output of a candidate with the original model, worst sample.
type OutputAccuracy struct {
	Output           string  `json:"output"`
	MaxRelativeError float64 `json:"max_relative_error"`
	MinCosine        float64 `json:"min_cosine"`
	// Top1Agreement is set for class-score outputs; -1 when not applicable.
	Top1Agreement float64 `json:"top1_agreement"`
}

// Candidate is one tried (model, settings) pair.
type Candidate struct {
	Name     string           `json:"name"`
	Detail   string           `json:"detail,omitempty"`
	Timing   *Timing          `json:"timing,omitempty"`
	Speedup  float64          `json:"speedup,omitempty"`
	Accuracy []OutputAccuracy `json:"accuracy,omitempty"`
	// Verdict is "chosen", "baseline", "rejected: <why>" or "failed: <why>".
	Verdict string `json:"verdict"`
}

// Write saves the report as indented JSON.
func (r *Report) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encode: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// PrintTable writes the human summary: one row per candidate.
func (r *Report) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CANDIDATE\tMEDIAN ms\tMIN ms\tMAX ms\tSPEEDUP\tACCURACY\tVERDICT")
	for _, c := range r.Candidates {
		med, lo, hi, sp := "-", "-", "-", "-"
		if c.Timing != nil {
			med = fmt.Sprintf("%.3f", c.Timing.MedianMS)
			lo = fmt.Sprintf("%.3f", c.Timing.MinMS)
			hi = fmt.Sprintf("%.3f", c.Timing.MaxMS)
		}
		if c.Speedup > 0 {
			sp = fmt.Sprintf("%.2fx", c.Speedup)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, med, lo, hi, sp, AccuracySummary(c.Accuracy), c.Verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "baseline %s → optimized %s (%s), chosen: %s\n", r.Overall.Baseline, r.Overall.Optimized, r.Overall.Speedup, r.Chosen)
	if r.Diagnosis.Message != "" {
		fmt.Fprintln(w, r.Diagnosis.Message)
	}
}

// AccuracySummary is the worst figures over all outputs, short enough for a table cell.
func AccuracySummary(acc []OutputAccuracy) string {
	if len(acc) == 0 {
		return "-"
	}
	rel, cos, top := 0.0, 1.0, -1.0
	for _, a := range acc {
		rel = max(rel, a.MaxRelativeError)
		cos = min(cos, a.MinCosine)
		if a.Top1Agreement >= 0 && (top < 0 || a.Top1Agreement < top) {
			top = a.Top1Agreement
		}
	}
	s := fmt.Sprintf("rel %.1e cos %.5f", rel, cos)
	if top >= 0 {
		s += fmt.Sprintf(" top1 %.1f%%", 100*top)
	}
	return s
}

// MS formats milliseconds the way Blade's report does ("4.38 ms").
func MS(v float64) string { return fmt.Sprintf("%.2f ms", v) }

// HardwareContext reads the CPU model and ISA flags from /proc/cpuinfo (best effort).
func HardwareContext(device string) Hardware {
	h := Hardware{Cores: runtime.NumCPU(), Device: device, Flags: []string{}}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return h
	}
	defer f.Close()
	interesting := []string{"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16", "f16c", "sse4_2"}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "model name":
			if h.CPUModel == "" {
				h.CPUModel = v
			}
		case "flags":
			if len(h.Flags) == 0 {
				have := strings.Fields(v)
				for _, fl := range interesting {
					if slices.Contains(have, fl) {
						h.Flags = append(h.Flags, fl)
					}
				}
			}
		}
	}
	return h
}
