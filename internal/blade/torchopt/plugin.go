package torchopt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/openeas/openeas/internal/blade"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/processor/torchproc"
)

// PluginRequest decides whether a plugin run is for a TorchScript model: the model that
// config.model_info names is one, or there is no model_info and the input holds exactly one
// TorchScript file and no .onnx file. ok is false for anything else (Blade for ONNX's job).
func PluginRequest(env blade.PluginEnv) (req *blade.PluginRequest, ok bool, err error) {
	files, err := modelsource.ListFiles(env.Input)
	if err != nil {
		return nil, false, fmt.Errorf("blade: read EAS_PLUGIN_INPUT: %w", err)
	}
	var cfg []byte
	if env.Config != "" {
		if cfg, err = os.ReadFile(env.Config); err != nil {
			return nil, false, fmt.Errorf("blade: read EAS_PLUGIN_CONFIG: %w", err)
		}
	}
	req, perr := blade.ParsePluginConfig(cfg, files)
	if perr == nil {
		return req, IsTorchScript(req.ModelFile), nil
	}
	var torchFiles, onnxFiles int
	var model string
	for _, f := range files {
		switch {
		case IsTorchScript(f):
			torchFiles++
			model = f
		case strings.HasSuffix(strings.ToLower(f), ".onnx"):
			onnxFiles++
		}
	}
	if strings.Contains(perr.Error(), "no config.model_info") && torchFiles == 1 && onnxFiles == 0 {
		return &blade.PluginRequest{ModelFile: model, Options: blade.Options{Level: blade.LevelO1}}, true, nil
	}
	return nil, torchFiles > 0 && onnxFiles == 0, fmt.Errorf("blade: %w", perr)
}

// RunPlugin optimizes the TorchScript model of req and writes it under the same name into
// env.Output with its signature file, every other input file copied unchanged, runtime.json
// beside it, and the report at env.Report. base supplies threads, runs and progress.
func RunPlugin(ctx context.Context, env blade.PluginEnv, req *blade.PluginRequest, optimizeFor string, base blade.Options) (*blade.Result, error) {
	device, note, err := blade.PluginDevice(optimizeFor, env.Device)
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]string{"EAS_PLUGIN_INPUT": env.Input, "EAS_PLUGIN_OUTPUT": env.Output, "EAS_PLUGIN_REPORT": env.Report} {
		if v == "" {
			return nil, fmt.Errorf("blade: plugin mode needs %s", name)
		}
	}
	o := base
	po := req.Options
	o.Model = filepath.Join(env.Input, filepath.FromSlash(req.ModelFile))
	o.Level, o.Device = po.Level, device
	o.InputShapes, o.InputRanges, o.Accuracy = po.InputShapes, po.InputRanges, po.Accuracy
	o.TestData, o.CalibrationDataset = "", ""
	if po.TestData != "" {
		o.TestData = filepath.Join(env.Input, filepath.FromSlash(po.TestData))
	}
	if po.CalibrationDataset != "" {
		o.CalibrationDataset = filepath.Join(env.Input, filepath.FromSlash(po.CalibrationDataset))
	}
	tmp, err := os.MkdirTemp("", "blade-torch-")
	if err != nil {
		return nil, fmt.Errorf("blade: %w", err)
	}
	defer os.RemoveAll(tmp)
	o.OutputDir, o.ModelName = tmp, filepath.Base(req.ModelFile)
	res, err := Optimize(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := blade.NoteDevice(res, optimizeFor, note); err != nil {
		return nil, err
	}
	// The signature file travels with the TorchScript model.
	if err := blade.WritePluginOutput(env, res, req.ModelFile, torchproc.SignatureSuffix); err != nil {
		return nil, err
	}
	return res, nil
}
