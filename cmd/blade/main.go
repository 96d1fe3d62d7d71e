// Command blade optimizes ONNX and TorchScript models for CPU inference, standalone (blade optimize …) or as an
// EAS plugin (blade --mode eas_plugin --optimize_for cpu).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/openeas/openeas/internal/blade"
	"github.com/openeas/openeas/internal/blade/torchopt"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/torch"
)

const envHelp = `Environment:
  OPENEAS_ORT_LIB     path of libonnxruntime.so (default: --ort-lib, else next to the blade executable)
  OPENEAS_TORCH_SHIM  path of libopeneas_torch.so for TorchScript models (.pt) (default: --torch-shim, else next to the blade executable)
  EAS_PLUGIN_INPUT    plugin mode: read-only directory holding the model
  EAS_PLUGIN_OUTPUT   plugin mode: empty directory that receives the optimized model and runtime.json
  EAS_PLUGIN_CONFIG   plugin mode: JSON file {"config": {"model_info": {...}}, "processor": ..., "metadata": ...}
  EAS_PLUGIN_REPORT   plugin mode: where the JSON report is written
  EAS_PLUGIN_DEVICE   plugin mode: the device the service runs on; cpu lets --optimize_for gpu optimize for CPU
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "blade:", strings.TrimPrefix(err.Error(), "blade: "))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "optimize" {
		return runOptimize(ctx, args[1:], stdout, stderr)
	}
	return runPlugin(ctx, args, stdout, stderr)
}

// common holds the flags both modes share.
type common struct {
	ortLib    string
	torchShim string
	threads   string
	runs      int
	verbose   bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.ortLib, "ort-lib", "", "path of libonnxruntime.so (default $OPENEAS_ORT_LIB, else next to the executable)")
	fs.StringVar(&c.torchShim, "torch-shim", "", "path of libopeneas_torch.so, for TorchScript models (default $OPENEAS_TORCH_SHIM, else next to the executable)")
	fs.StringVar(&c.threads, "threads", "", "comma-separated intra-op thread counts to try (default 1 and the number of CPUs)")
	fs.IntVar(&c.runs, "runs", blade.DefaultRuns, "timed runs per candidate after warm-up")
	fs.BoolVar(&c.verbose, "v", false, "debug logs on stderr")
}

func (c *common) apply(o *blade.Options, stderr io.Writer) error {
	if err := c.settings(o, stderr); err != nil {
		return err
	}
	return initORT(c.ortLib)
}

// applyTorch is apply for TorchScript models: libtorch instead of ONNX Runtime.
func (c *common) applyTorch(o *blade.Options, stderr io.Writer) error {
	if err := c.settings(o, stderr); err != nil {
		return err
	}
	shim := c.torchShim
	if shim == "" {
		shim = os.Getenv("OPENEAS_TORCH_SHIM")
	}
	if shim == "" {
		if exe, err := os.Executable(); err == nil {
			shim = torch.FindShim(filepath.Dir(exe))
		}
	}
	return torch.Init(shim)
}

func (c *common) settings(o *blade.Options, stderr io.Writer) error {
	lvl := slog.LevelWarn
	if c.verbose {
		lvl = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	o.Progress = stderr
	o.Runs = c.runs
	if c.threads != "" {
		for _, s := range strings.Split(c.threads, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				return fmt.Errorf("--threads %q: expected comma-separated counts ≥ 1, like 1,2", c.threads)
			}
			o.Threads = append(o.Threads, n)
		}
	}
	return nil
}

func initORT(flagPath string) error {
	lib := flagPath
	if lib == "" {
		lib = os.Getenv("OPENEAS_ORT_LIB")
	}
	if lib == "" {
		exe, err := os.Executable()
		if err == nil {
			lib = ort.FindLibrary(filepath.Dir(exe))
		}
	}
	if lib == "" {
		return errors.New("ONNX Runtime library not found: pass --ort-lib or set OPENEAS_ORT_LIB (make build puts libonnxruntime.so.1 next to blade)")
	}
	if err := ort.Init(lib); err != nil {
		return fmt.Errorf("load ONNX Runtime %s: %w", lib, err)
	}
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// splitSets parses "a;b|c;d": sets separated by '|', one entry per input separated by ';'.
func splitSets(s string) [][]string {
	if s == "" {
		return nil
	}
	var out [][]string
	for _, set := range strings.Split(s, "|") {
		out = append(out, strings.Split(set, ";"))
	}
	return out
}

func runOptimize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("blade optimize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o blade.Options
	var c common
	var inputs, outputs, shapes, ranges string
	var minCos, minTop1, maxRel float64
	fs.StringVar(&o.Model, "model", "", "ONNX model to optimize (required)")
	fs.StringVar(&o.OutputDir, "output", "", "directory for model.onnx, runtime.json and report.json (required)")
	fs.StringVar(&o.Level, "level", "o1", "o1 (lossless) or o2 (adds INT8)")
	fs.StringVar(&o.Device, "device", "cpu", "target device; this build supports cpu")
	fs.StringVar(&o.TestData, "test-data", "", "test data (.npy list of feed dicts, .pth list of tuples, .npz) used to verify and time")
	fs.StringVar(&o.CalibrationDataset, "calibration-dataset", "", "calibration data for INT8 (same formats)")
	fs.StringVar(&inputs, "inputs", "", "comma-separated input names (the order input shapes and ranges follow)")
	fs.StringVar(&outputs, "outputs", "", "comma-separated output names to verify")
	fs.StringVar(&shapes, "input-shapes", "", `input shapes: one "1*3*224*224" per input separated by ';', sets separated by '|'`)
	fs.StringVar(&ranges, "input-ranges", "", `input value ranges: one "[0.0,1.0]" per input separated by ';', sets separated by '|'`)
	fs.StringVar(&o.WeightAdjustment, "weight-adjustment", "auto", "INT8 bias correction: true, false or auto")
	fs.Float64Var(&minCos, "min-cosine", 0, "o2 budget: minimum cosine similarity per output (default 0.99)")
	fs.Float64Var(&minTop1, "min-top1", 0, "minimum top-1 agreement for class-score outputs (default 1 at o1, 0.99 at o2)")
	fs.Float64Var(&maxRel, "max-relative-error", 0, "o1 budget: maximum ‖out−ref‖/‖ref‖ (default 1e-4)")
	c.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: blade optimize --model PATH --output DIR [flags]\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\n"+envHelp)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see blade optimize --help)", fs.Args())
	}
	if o.Model == "" || o.OutputDir == "" {
		fs.Usage()
		return errors.New("--model and --output are required")
	}
	o.Inputs, o.Outputs = splitList(inputs), splitList(outputs)
	o.InputShapes, o.InputRanges = splitSets(shapes), splitSets(ranges)
	o.Accuracy = blade.AccuracyBudget{MaxRelativeError: maxRel, MinCosine: minCos, MinTop1Agreement: minTop1}
	optimize := blade.Optimize
	apply := c.apply
	if torchopt.IsTorchScript(o.Model) {
		optimize, apply = torchopt.Optimize, c.applyTorch
	}
	if err := apply(&o, stderr); err != nil {
		return err
	}
	res, err := optimize(ctx, o)
	if err != nil {
		return err
	}
	res.Report.PrintTable(stdout)
	fmt.Fprintf(stdout, "wrote %s, %s, %s\n", res.ModelPath, res.RuntimePath, res.ReportPath)
	return nil
}

func runPlugin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("blade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	var mode, optimizeFor string
	fs.StringVar(&mode, "mode", "", "eas_plugin: run as an EAS plugin (reads the EAS_PLUGIN_* environment)")
	fs.StringVar(&optimizeFor, "optimize_for", "cpu", "plugin mode: cpu or gpu (this build optimizes for cpu; gpu only where EAS_PLUGIN_DEVICE=cpu)")
	c.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage:
  blade optimize --model PATH --output DIR [flags]   optimize one model (blade optimize --help)
  blade --mode eas_plugin --optimize_for cpu|gpu     run as an EAS plugin

Plugin-mode flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\n"+envHelp)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if mode != "eas_plugin" {
		fs.Usage()
		if mode == "" {
			return errors.New("missing command: use blade optimize … or blade --mode eas_plugin")
		}
		return fmt.Errorf("--mode %q: expected eas_plugin", mode)
	}
	env := blade.PluginEnv{
		Input:  os.Getenv("EAS_PLUGIN_INPUT"),
		Output: os.Getenv("EAS_PLUGIN_OUTPUT"),
		Config: os.Getenv("EAS_PLUGIN_CONFIG"),
		Report: os.Getenv("EAS_PLUGIN_REPORT"),
		Device: os.Getenv("EAS_PLUGIN_DEVICE"),
	}
	// Fail before loading a runtime: the message is about the build, not the library.
	if _, _, err := blade.PluginDevice(optimizeFor, env.Device); err != nil {
		return err
	}
	// TorchScript models go to Blade for TorchScript (libtorch), the rest to ONNX.
	if req, ok, err := torchopt.PluginRequest(env); ok {
		if err != nil {
			return err
		}
		var o blade.Options
		if err := c.applyTorch(&o, stderr); err != nil {
			return err
		}
		res, err := torchopt.RunPlugin(ctx, env, req, optimizeFor, o)
		if err != nil {
			return err
		}
		res.Report.PrintTable(stdout)
		return nil
	}
	var o blade.Options
	if err := c.apply(&o, stderr); err != nil {
		return err
	}
	res, err := blade.RunPlugin(ctx, env, optimizeFor, o)
	if err != nil {
		return err
	}
	res.Report.PrintTable(stdout)
	return nil
}
