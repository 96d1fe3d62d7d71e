// Package blade is the model optimizer: it builds candidate models and session settings,
// verifies each against the original model's outputs, times each, and keeps the fastest one
// that stays inside the accuracy budget. Packages below it hold the pieces: onnx/ (protobuf and
// graph), auxdata/ (test and calibration data), passes/ (lossless rewrites), quant/ (INT8
// rewrites) and report/ (the Blade-shaped report).
package blade

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Levels and devices accepted by Options.
const (
	LevelO1   = "o1"
	LevelO2   = "o2"
	DeviceCPU = "cpu"
	DeviceGPU = "gpu"
)

// AccuracyBudget bounds how far an optimized model's outputs may drift from the original's.
// Zero fields take the level's default (see DefaultBudget).
type AccuracyBudget struct {
	// MaxRelativeError bounds ‖out−ref‖/‖ref‖ per output and sample (o1 default 1e-4).
	MaxRelativeError float64 `json:"max_relative_error,omitempty"`
	// MinCosine bounds the cosine similarity per output and sample (o2 default 0.99).
	MinCosine float64 `json:"min_cosine,omitempty"`
	// MinTop1Agreement is the share of rows of class-score outputs whose argmax must agree
	// (o1: 1.0, o2 default 0.99).
	MinTop1Agreement float64 `json:"min_top1_agreement,omitempty"`
}

// DefaultBudget is the budget a level uses when the user sets none.
func DefaultBudget(level string) AccuracyBudget {
	if level == LevelO2 {
		return AccuracyBudget{MinCosine: 0.99, MinTop1Agreement: 0.99}
	}
	return AccuracyBudget{MaxRelativeError: 1e-4, MinTop1Agreement: 1}
}

// BudgetFor returns the budget candidates of a level must meet: o1 candidates are lossless
// (relative error, and the same top-1 unless the user relaxed it), o2 candidates keep cosine
// and top-1 agreement. User fields override the defaults; unset ones keep them.
func (b AccuracyBudget) BudgetFor(level string) AccuracyBudget {
	d := DefaultBudget(level)
	if b.MaxRelativeError != 0 {
		d.MaxRelativeError = b.MaxRelativeError
	}
	if b.MinCosine != 0 {
		d.MinCosine = b.MinCosine
	}
	if b.MinTop1Agreement != 0 {
		d.MinTop1Agreement = b.MinTop1Agreement
	}
	return d
}

// Options are one optimization request. Only Model and OutputDir are required.
type Options struct {
	Model     string // path of the .onnx model
	OutputDir string // where model.onnx, runtime.json and report.json go
	Level     string // "o1" (default) or "o2"
	Device    string // "cpu" (default); "gpu" is refused by this build
	// TestData and CalibrationDataset are auxiliary data files (.npy, .pth, .npz).
	TestData           string
	CalibrationDataset string
	// Inputs and Outputs restrict the signature used (default: the model's own).
	Inputs, Outputs []string
	// InputShapes are sets of possible input shapes, one "1*512" string per input.
	InputShapes [][]string
	// InputRanges are sets of value ranges, one "[1.0,2.0]" string per input.
	InputRanges [][]string
	// WeightAdjustment is "true", "false" or "auto" (default): bias correction for INT8.
	WeightAdjustment string
	// CalibrationPercentile, in (0, 100), clips each activation range to that share of the
	// calibration values (e.g. 99.99); 0 keeps the full min/max range.
	CalibrationPercentile float64
	Accuracy              AccuracyBudget
	// Threads are the intra-op thread counts tried (default {1, NumCPU}).
	Threads []int
	// Runs is the number of timed runs after warm-up per candidate (default 50).
	Runs int
	// Samples caps how many synthesized samples are used when there is no test data (default 4).
	Samples int
	// ModelName is the file name written in OutputDir (default "model.onnx").
	ModelName string
	Progress  io.Writer    // human progress lines; nil = none
	Logger    *slog.Logger // nil = discard
	// Engine loads sessions; nil = ONNX Runtime (ort.Init must have been called).
	Engine Engine
}

// DefaultRuns is the number of timed runs per candidate when Options.Runs is 0.
const DefaultRuns = 50

func (o *Options) applyDefaults() {
	if o.Level == "" {
		o.Level = LevelO1
	}
	o.Level = strings.ToLower(o.Level)
	if o.Device == "" {
		o.Device = DeviceCPU
	}
	o.Device = strings.ToLower(o.Device)
	if o.WeightAdjustment == "" {
		o.WeightAdjustment = "auto"
	}
	if len(o.Threads) == 0 {
		o.Threads = []int{1}
		if n := runtime.NumCPU(); n > 1 {
			o.Threads = append(o.Threads, n)
		}
	}
	if o.Runs == 0 {
		o.Runs = DefaultRuns
	}
	if o.Samples == 0 {
		o.Samples = 4
	}
	if o.ModelName == "" {
		o.ModelName = "model.onnx"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	if o.Model == "" {
		return fmt.Errorf("blade: model path is required")
	}
	if o.OutputDir == "" {
		return fmt.Errorf("blade: output directory is required")
	}
	switch o.Level {
	case LevelO1, LevelO2:
	default:
		return fmt.Errorf("blade: optimization level %q: expected \"o1\" or \"o2\"", o.Level)
	}
	switch o.Device {
	case DeviceCPU:
	case DeviceGPU:
		return fmt.Errorf("blade: device gpu: this build of blade optimizes for CPU only (no GPU execution provider in its ONNX Runtime)")
	default:
		return fmt.Errorf("blade: device %q: expected \"cpu\" or \"gpu\"", o.Device)
	}
	switch o.WeightAdjustment {
	case "true", "false", "auto":
	default:
		return fmt.Errorf("blade: weight_adjustment %q: expected true, false or auto", o.WeightAdjustment)
	}
	for _, t := range o.Threads {
		if t < 1 {
			return fmt.Errorf("blade: threads %d: expected a count of at least 1", t)
		}
	}
	if p := o.CalibrationPercentile; p < 0 || p >= 100 || math.IsNaN(p) {
		return fmt.Errorf("blade: calibration percentile %g: expected a value in (0, 100), or 0 for the min/max range", p)
	}
	if o.Runs < 1 {
		return fmt.Errorf("blade: runs %d: expected at least 1", o.Runs)
	}
	b := o.Accuracy
	if b.MaxRelativeError < 0 || b.MinCosine < -1 || b.MinCosine > 1 || b.MinTop1Agreement < 0 || b.MinTop1Agreement > 1 {
		return fmt.Errorf("blade: accuracy budget %+v: expected max_relative_error ≥ 0, min_cosine and min_top1_agreement in [0,1]", b)
	}
	for i, set := range o.InputShapes {
		for j, s := range set {
			if _, err := ParseShape(s); err != nil {
				return fmt.Errorf("blade: input_shapes[%d][%d]: %w", i, j, err)
			}
		}
	}
	for i, set := range o.InputRanges {
		for j, s := range set {
			if _, err := ParseRange(s); err != nil {
				return fmt.Errorf("blade: input_ranges[%d][%d]: %w", i, j, err)
			}
		}
	}
	return nil
}

// ParseShape parses a shape string like "1*3*224*224". The empty string is a scalar.
func ParseShape(s string) ([]int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return []int64{}, nil
	}
	parts := strings.Split(s, "*")
	shape := make([]int64, len(parts))
	for i, p := range parts {
		d, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("shape %q: expected dimensions like \"1*512\" (non-negative integers joined by *)", s)
		}
		shape[i] = d
	}
	return shape, nil
}

// Range is a closed interval of element values.
type Range struct{ Lo, Hi float64 }

// ParseRange parses "[1.0,2.0]"; single characters ("[a,z]") stand for their code points.
func ParseRange(s string) (Range, error) {
	bad := fmt.Errorf("range %q: expected \"[low,high]\" with numbers (or single characters) and low ≤ high", s)
	t := strings.TrimSpace(s)
	if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' {
		return Range{}, bad
	}
	lo, hi, ok := strings.Cut(t[1:len(t)-1], ",")
	if !ok {
		return Range{}, bad
	}
	a, err1 := rangeBound(lo)
	b, err2 := rangeBound(hi)
	if err1 != nil || err2 != nil || a > b {
		return Range{}, bad
	}
	return Range{a, b}, nil
}

func rangeBound(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) {
		return v, nil
	}
	if utf8.RuneCountInString(s) == 1 {
		r, _ := utf8.DecodeRuneInString(s)
		return float64(r), nil
	}
	return 0, fmt.Errorf("bad bound %q", s)
}
