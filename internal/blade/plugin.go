package blade

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/modelsource"
)

// PluginEnv is the plugin contract's environment (see docs/architecture.md): EAS_PLUGIN_INPUT
// (read-only model dir), EAS_PLUGIN_OUTPUT (empty dir for the result), EAS_PLUGIN_CONFIG (JSON
// file), EAS_PLUGIN_REPORT (where the report goes), EAS_PLUGIN_DEVICE.
type PluginEnv struct {
	Input, Output, Config, Report, Device string
}

// RunPlugin optimizes the model named by the plugin config (or the single .onnx file of the
// input) and writes the result under the same file name into env.Output, with every other input
// file copied unchanged, runtime.json beside it, and the report at env.Report. base supplies
// the settings the config does not carry (threads, runs, progress, logger, engine).
func RunPlugin(ctx context.Context, env PluginEnv, optimizeFor string, base Options) (*Result, error) {
	run, err := StartPlugin(env, optimizeFor)
	if err != nil {
		return nil, err
	}
	files, cfg, err := ReadPluginInput(env)
	if err != nil {
		return nil, err
	}
	req, err := ParsePluginConfig(cfg, files)
	if err != nil {
		return nil, fmt.Errorf("blade: %w", err)
	}
	// ONNX external data travels with the model.
	return run.Optimize(ctx, req, base, Optimize, ".data")
}

// PluginRun is a plugin run whose device and environment are settled (StartPlugin).
type PluginRun struct {
	env                       PluginEnv
	optimizeFor, device, note string
}

// StartPlugin resolves the device to optimize for (PluginDevice) and checks that env names the
// input, output and report, before anything is read.
func StartPlugin(env PluginEnv, optimizeFor string) (*PluginRun, error) {
	device, note, err := PluginDevice(optimizeFor, env.Device)
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]string{"EAS_PLUGIN_INPUT": env.Input, "EAS_PLUGIN_OUTPUT": env.Output, "EAS_PLUGIN_REPORT": env.Report} {
		if v == "" {
			return nil, fmt.Errorf("blade: plugin mode needs %s", name)
		}
	}
	return &PluginRun{env: env, optimizeFor: optimizeFor, device: device, note: note}, nil
}

// ReadPluginInput lists the input model's files and reads the plugin config (nil when
// EAS_PLUGIN_CONFIG is unset).
func ReadPluginInput(env PluginEnv) (files []string, config []byte, err error) {
	if files, err = modelsource.ListFiles(env.Input); err != nil {
		return nil, nil, fmt.Errorf("blade: read EAS_PLUGIN_INPUT: %w", err)
	}
	if env.Config != "" {
		if config, err = os.ReadFile(env.Config); err != nil {
			return nil, nil, fmt.Errorf("blade: read EAS_PLUGIN_CONFIG: %w", err)
		}
	}
	return files, config, nil
}

// Optimize runs optimize on req's model with req's options over base, in a scratch
// directory, records the device note in the report, and writes the plugin output
// (writePluginOutput; companions travel with the model).
func (p *PluginRun) Optimize(ctx context.Context, req *PluginRequest, base Options, optimize func(context.Context, Options) (*Result, error), companions ...string) (*Result, error) {
	o := base
	po := req.Options
	o.Model = filepath.Join(p.env.Input, filepath.FromSlash(req.ModelFile))
	o.Level, o.Device = po.Level, p.device
	o.Inputs, o.Outputs, o.InputShapes, o.InputRanges = po.Inputs, po.Outputs, po.InputShapes, po.InputRanges
	o.WeightAdjustment, o.Accuracy = po.WeightAdjustment, po.Accuracy
	o.TestData, o.CalibrationDataset = "", ""
	if po.TestData != "" {
		o.TestData = filepath.Join(p.env.Input, filepath.FromSlash(po.TestData))
	}
	if po.CalibrationDataset != "" {
		o.CalibrationDataset = filepath.Join(p.env.Input, filepath.FromSlash(po.CalibrationDataset))
	}
	tmp, err := os.MkdirTemp("", "blade-plugin-")
	if err != nil {
		return nil, fmt.Errorf("blade: %w", err)
	}
	defer os.RemoveAll(tmp)
	o.OutputDir, o.ModelName = tmp, filepath.Base(req.ModelFile)
	res, err := optimize(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := noteDevice(res, p.optimizeFor, p.note); err != nil {
		return nil, err
	}
	if err := writePluginOutput(p.env, res, req.ModelFile, companions...); err != nil {
		return nil, err
	}
	return res, nil
}

// writePluginOutput assembles a plugin run's output directory from a finished run: every
// input file copied unchanged except the model, its companions and a stale runtime.json;
// then the optimized model with the companions it has (files named model+suffix, e.g. ONNX
// external data ".data"), runtime.json, and the report at env.Report. res's paths are
// updated to where the files now are.
func writePluginOutput(env PluginEnv, res *Result, modelFile string, companions ...string) error {
	files, err := modelsource.ListFiles(env.Input)
	if err != nil {
		return fmt.Errorf("blade: read EAS_PLUGIN_INPUT: %w", err)
	}
	skip := map[string]bool{modelFile: true, RuntimeFile: true}
	for _, c := range companions {
		skip[modelFile+c] = true
	}
	for _, f := range files {
		if skip[f] {
			continue
		}
		if err := modelsource.CopyFile(filepath.Join(env.Input, filepath.FromSlash(f)), filepath.Join(env.Output, filepath.FromSlash(f))); err != nil {
			return fmt.Errorf("blade: copy %s to the output: %w", f, err)
		}
	}
	dstModel := filepath.Join(env.Output, filepath.FromSlash(modelFile))
	moves := [][2]string{{res.ModelPath, dstModel}, {res.RuntimePath, filepath.Join(env.Output, RuntimeFile)}, {res.ReportPath, env.Report}}
	for _, c := range companions {
		if _, err := os.Stat(res.ModelPath + c); err == nil {
			moves = append(moves, [2]string{res.ModelPath + c, dstModel + c})
		}
	}
	for _, mv := range moves {
		if err := modelsource.CopyFile(mv[0], mv[1]); err != nil {
			return fmt.Errorf("blade: write plugin output: %w", err)
		}
	}
	res.ModelPath, res.RuntimePath, res.ReportPath = dstModel, filepath.Join(env.Output, RuntimeFile), env.Report
	return nil
}
