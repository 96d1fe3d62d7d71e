package torchopt

import (
	"context"
	"fmt"
	"strings"

	"github.com/openeas/openeas/internal/blade"
	"github.com/openeas/openeas/internal/processor/torchproc"
)

// PluginRequest decides whether a plugin run is for a TorchScript model: the model that
// config.model_info names is one, or there is no model_info and the input holds exactly one
// TorchScript file and no .onnx file. ok is false for anything else (Blade for ONNX's job).
func PluginRequest(env blade.PluginEnv) (req *blade.PluginRequest, ok bool, err error) {
	files, cfg, err := blade.ReadPluginInput(env)
	if err != nil {
		return nil, false, err
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
	run, err := blade.StartPlugin(env, optimizeFor)
	if err != nil {
		return nil, err
	}
	// The signature file travels with the TorchScript model.
	return run.Optimize(ctx, req, base, Optimize, torchproc.SignatureSuffix)
}
