package blade

import (
	"context"
	"maps"

	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// Session is one loaded model. Run is called from one goroutine at a time.
type Session interface {
	Inputs() []tensor.Info
	Outputs() []tensor.Info
	Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)
	Close() error
}

// SessionConfig is how a candidate is loaded: the runtime settings it would ship with, plus
// settings that only matter while optimizing.
type SessionConfig struct {
	Runtime processor.Runtime
	// OptimizedModelPath makes the runtime save its optimized graph there.
	OptimizedModelPath string
}

// Engine opens sessions. The default is ONNX Runtime (ort.Init must have been called).
type Engine interface {
	NewSession(modelPath string, cfg SessionConfig) (Session, error)
	Version() string
}

// ORT is the Engine backed by internal/ort.
type ORT struct{}

// NewSession opens modelPath with ONNX Runtime.
func (ORT) NewSession(modelPath string, cfg SessionConfig) (Session, error) {
	o := ort.OptionsFromRuntime(cfg.Runtime)
	o.ConfigEntries = maps.Clone(cfg.Runtime.ConfigEntries)
	o.OptimizedModelPath = cfg.OptimizedModelPath
	s, err := ort.NewSession(modelPath, o)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Version is the ONNX Runtime library version.
func (ORT) Version() string { return ort.Version() }
