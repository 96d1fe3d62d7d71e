package processor

// Runtime holds the session settings a processor applies when it loads a model.
// Blade chooses them (and writes them as runtime.json next to the model it produces);
// the deploy pipeline records them in bundle.json; workers apply them. Zero values mean
// "the runtime's own default", so a bundle made without Blade runs as ONNX Runtime would.
type Runtime struct {
	IntraOpThreads int `json:"intra_op_threads,omitempty"`
	InterOpThreads int `json:"inter_op_threads,omitempty"`
	// GraphOptimizationLevel: "", "disable", "basic", "extended", "all".
	GraphOptimizationLevel string `json:"graph_optimization_level,omitempty"`
	// ExecutionMode: "", "sequential", "parallel".
	ExecutionMode string `json:"execution_mode,omitempty"`
	// AllowSpinning maps to session.intra_op.allow_spinning (nil = runtime default, which spins).
	AllowSpinning *bool `json:"allow_spinning,omitempty"`
	// ConfigEntries are passed verbatim as session config entries (AddSessionConfigEntry).
	ConfigEntries map[string]string `json:"config_entries,omitempty"`
}
