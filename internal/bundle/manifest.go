// Package bundle seals a model directory, its plugin reports and its runtime settings into an
// immutable, content-addressed directory (the "image" a service version runs), and keeps the
// plugin result cache. Workers only read bundles.
package bundle

import (
	"time"

	"github.com/openeas/openeas/internal/processor"
)

// ManifestFile is the name of the manifest inside a bundle directory.
const ManifestFile = "bundle.json"

// Manifest is bundle.json. The bundle directory also holds model/ (the model to serve) and
// reports/ (one JSON report per plugin run).
type Manifest struct {
	Schema     int    `json:"schema"`      // 1
	Processor  string `json:"processor"`   // canonical processor name, e.g. "onnxruntime_cpu"
	ModelEntry string `json:"model_entry"` // path of the model file inside model/, slash-separated
	// Signature is filled when known (e.g. from Blade's report); workers read it from the model itself.
	Signature   *processor.Signature `json:"signature,omitempty"`
	Runtime     processor.Runtime    `json:"runtime"`
	ModelDigest string               `json:"model_digest"` // sha256 of the fetched model tree, "sha256:<hex>"
	ModelPath   string               `json:"model_path"`   // where it was fetched from (credentials stripped)
	Plugins     []PluginRun          `json:"plugins,omitempty"`
	Created     time.Time            `json:"created"`
	// WarmUpData lists the warm-up request files fetched from warm_up_data_path, as
	// slash-separated paths under warmup/ in the order workers replay them (docs/serving.md).
	WarmUpData []string `json:"warm_up_data,omitempty"`
	// TensorFlow is set when the model was a TensorFlow GraphDef converted to ONNX at deploy
	// time (Processor is then the runtime that serves it, "onnxruntime_cpu"): workers decode
	// requests as the TensorFlow family.
	TensorFlow *TFModel `json:"tensorflow,omitempty"`
}

// TFModel records a TensorFlow model's conversion and its TF signature. ONNX value names are
// the TF tensor names with ":0" dropped.
type TFModel struct {
	Processor   string     `json:"processor"`    // as asked in service.json, e.g. "tensorflow_cpu_1.15"
	SourceEntry string     `json:"source_entry"` // the GraphDef file, e.g. "frozen.pb"
	Converter   string     `json:"converter"`    // converter version
	Inputs      []TFTensor `json:"inputs"`       // placeholders
	Outputs     []string   `json:"outputs"`      // TF tensor names, "logits:0"
	// Signatures are a SavedModel's signature_defs by name ("serving_default"…); none for a
	// frozen.pb. Workers honour signature_name and the aliases with them.
	Signatures map[string]TFSignature `json:"signatures,omitempty"`
}

// TFSignature is one SavedModel signature: each input and output alias mapped to the TF
// tensor it names, with the dtype and shape the SavedModel declares (shape nil: unknown rank).
type TFSignature struct {
	MethodName string              `json:"method_name,omitempty"` // e.g. "tensorflow/serving/predict"
	Inputs     map[string]TFTensor `json:"inputs"`
	Outputs    map[string]TFTensor `json:"outputs"`
}

// TFTensor is one TF placeholder: name "x:0", dtype "DT_FLOAT", shape with -1 for unknown dims.
type TFTensor struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
}

// PluginRun records one plugin step of the pipeline that produced the bundle.
type PluginRun struct {
	ID       string        `json:"id"`    // "eas-plugin-<8 hex of key>"
	Image    string        `json:"image"` // as written in service.json
	Command  string        `json:"command"`
	Key      string        `json:"key"`              // content key, "sha256:<hex>"
	Cached   bool          `json:"cached"`           // true when the result came from the cache
	Report   string        `json:"report,omitempty"` // path inside the bundle, e.g. "reports/plugin-0.json"
	Duration time.Duration `json:"duration"`
}
