package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/spec"
	"github.com/openeas/openeas/internal/tf"
	"github.com/openeas/openeas/internal/tf/tfpb"
)

// tfONNXEntry is the converted model's file name in the bundle.
const tfONNXEntry = "model.onnx"

// tfProcessor serves converted TensorFlow models.
const tfProcessor = "onnxruntime_cpu"

// tfConversion is the cached conversion report (the "report" of the cache entry).
type tfConversion struct {
	TFNodes    int             `json:"tf_nodes"`
	ONNXNodes  int             `json:"onnx_nodes"`
	Transposes int             `json:"transposes"`
	Millis     int64           `json:"ms"`
	Model      *bundle.TFModel `json:"tensorflow"` // SavedModel signatures included
}

// tfConvertKey names the conversion cache's layout in its content key. "tf-convert/2": the
// signatures live in the report's TFModel (bundle.json), not in a tf_signatures.json of the
// converted tree; entries of the first layout are not reused, so such models are converted
// again.
const tfConvertKey = "tf-convert/2"

// convertTF turns the TensorFlow GraphDef entry of the fetched tree into model.onnx, once per
// (model digest, entry, converter version, outputs): the result is cached in the plugin cache
// under that content key. It returns the converted tree (every other file copied), the new
// entry and the TF signature. The graph is pruned to the outputs a plugin's
// config.model_info.<entry>.outputs names (Blade's option), when one does.
func (m *Manager) convertTF(ctx context.Context, name string, svc *spec.Service, modelDir, modelDigest, entry string) (string, string, *bundle.TFModel, error) {
	outputs, err := tfOutputsOption(svc, entry)
	if err != nil {
		return "", "", nil, err
	}
	sum := sha256.Sum256([]byte(strings.Join(append([]string{tfConvertKey, modelDigest, entry, tf.ConverterVersion}, outputs...), "\x00")))
	key := "sha256:" + hex.EncodeToString(sum[:])
	if out, report, ok := m.opts.Bundles.CachedPluginContext(ctx, key); ok {
		var conv tfConversion
		if err := json.Unmarshal(report, &conv); err == nil && conv.Model != nil {
			m.okEvent(ctx, name, fmt.Sprintf("Converted TensorFlow GraphDef %s to ONNX: %d nodes → %d ONNX nodes (cached result for this model)",
				entry, conv.TFNodes, conv.ONNXNodes))
			return out, tfONNXEntry, conv.Model, nil
		}
	}
	b, err := os.ReadFile(filepath.Join(modelDir, filepath.FromSlash(entry)))
	if err != nil {
		return "", "", nil, fmt.Errorf("read TensorFlow model: %w", err)
	}
	t0 := time.Now()
	graph, sigs, err := tfGraph(entry, b)
	if err != nil {
		return "", "", nil, err
	}
	if len(outputs) == 0 && len(sigs) > 0 {
		// Keep every tensor a signature can ask for, even ones other nodes consume.
		outputs = (&tf.SavedModel{Signatures: sigs}).SignatureOutputs()
	}
	res, err := tf.ConvertGraph(ctx, graph, tf.Options{Outputs: outputs})
	if err != nil {
		return "", "", nil, fmt.Errorf("convert TensorFlow GraphDef %s to ONNX: %w", entry, err)
	}
	work, err := os.MkdirTemp(filepath.Join(m.opts.DataDir, "tmp"), "tfconv-")
	if err != nil {
		return "", "", nil, err
	}
	defer os.RemoveAll(work)
	tree := filepath.Join(work, "tree")
	if err := modelsource.CopyTree(ctx, modelDir, tree); err != nil {
		return "", "", nil, fmt.Errorf("convert TensorFlow model: copy the model tree: %w", err)
	}
	// The GraphDef is replaced by the ONNX model; everything else (test data…) stays.
	if err := os.Remove(filepath.Join(tree, filepath.FromSlash(entry))); err != nil {
		return "", "", nil, err
	}
	if err := onnx.Save(res.Model, filepath.Join(tree, tfONNXEntry), 0); err != nil {
		return "", "", nil, fmt.Errorf("convert TensorFlow model: %w", err)
	}
	tfm := &bundle.TFModel{Processor: svc.Processor, SourceEntry: entry, Converter: tf.ConverterVersion, Outputs: res.Signature.Outputs}
	for _, in := range res.Signature.Inputs {
		tfm.Inputs = append(tfm.Inputs, bundle.TFTensor{Name: in.Name, DType: in.DType, Shape: in.Shape})
	}
	if len(sigs) > 0 {
		// Workers take the signatures from bundle.json to honour signature_name and aliases.
		if tfm.Signatures, err = tfSignatures(entry, b, sigs, tfm.Inputs); err != nil {
			return "", "", nil, err
		}
	}
	elapsed := time.Since(t0)
	report, err := json.Marshal(tfConversion{TFNodes: res.TFNodes, ONNXNodes: res.ONNXNodes, Transposes: res.Transposes, Millis: elapsed.Milliseconds(), Model: tfm})
	if err != nil {
		return "", "", nil, err
	}
	out, err := m.opts.Bundles.PutPlugin(ctx, key, tree, report)
	if err != nil {
		return "", "", nil, fmt.Errorf("cache the converted model: %w", err)
	}
	m.okEvent(ctx, name, fmt.Sprintf("Converted TensorFlow GraphDef %s to ONNX: %d nodes → %d ONNX nodes in %d ms",
		entry, res.TFNodes, res.ONNXNodes, elapsed.Milliseconds()))
	return out, tfONNXEntry, tfm, nil
}

// tfGraph decodes the model file: a SavedModel (saved_model.pb; its serving graph must be
// frozen) with its signatures, or a frozen GraphDef (no signatures).
func tfGraph(entry string, b []byte) (*tfpb.GraphDef, map[string]tf.SignatureDef, error) {
	if path.Base(entry) == tf.SavedModelFile {
		sm, err := tf.ParseSavedModel(entry, b)
		if err != nil {
			return nil, nil, err
		}
		return sm.Graph, sm.Signatures, nil
	}
	g, err := tf.ParseGraphDef(b)
	if err != nil {
		return nil, nil, fmt.Errorf("convert TensorFlow GraphDef %s to ONNX: %w", entry, err)
	}
	return g, nil, nil
}

// tfOutputsOption returns the TF output names a plugin's config.model_info.<entry>.outputs
// asks for (the first plugin that names some), nil when none does.
func tfOutputsOption(svc *spec.Service, entry string) ([]string, error) {
	for i, p := range svc.Plugins {
		info, err := pluginModelInfo(p.Config)
		if err != nil {
			return nil, fmt.Errorf("plugins[%d].config: %w", i, err)
		}
		opts, ok := info[entry]
		if !ok {
			continue
		}
		var o struct {
			Outputs []string `json:"outputs"`
		}
		if err := json.Unmarshal(opts, &o); err != nil {
			return nil, fmt.Errorf("plugins[%d].config.model_info[%q].outputs: expected a list of tensor names: %w", i, entry, err)
		}
		if len(o.Outputs) > 0 {
			return o.Outputs, nil
		}
	}
	return nil, nil
}

func pluginModelInfo(config json.RawMessage) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(config)) == 0 || string(bytes.TrimSpace(config)) == "null" {
		return nil, nil
	}
	var c struct {
		ModelInfo map[string]json.RawMessage `json:"model_info"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("expected an object: %w", err)
	}
	return c.ModelInfo, nil
}

// tfPluginConfig rewrites a plugin config written for the TensorFlow model so it applies to
// the converted ONNX model: model_info keyed by the GraphDef file is re-keyed to model.onnx,
// and the tensor names in inputs/outputs lose their ":0" (the converter's ONNX names).
// Anything else, test_data and calibration_dataset included, passes unchanged: Blade matches
// feed-dict keys with or without ":0".
func tfPluginConfig(config json.RawMessage, entry string) (json.RawMessage, error) {
	if len(bytes.TrimSpace(config)) == 0 || string(bytes.TrimSpace(config)) == "null" {
		return config, nil
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("expected an object: %w", err)
	}
	raw, ok := c["model_info"]
	if !ok {
		return config, nil
	}
	var info map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &info); err != nil {
		return config, nil // not ours to judge: the plugin reports its own config errors
	}
	opts, ok := info[entry]
	if !ok {
		return config, nil
	}
	for _, k := range []string{"inputs", "outputs"} {
		var names []string
		if v, ok := opts[k]; ok && json.Unmarshal(v, &names) == nil {
			for i, n := range names {
				names[i] = tf.ONNXName(n)
			}
			b, _ := json.Marshal(names)
			opts[k] = b
		}
	}
	delete(info, entry)
	info[tfONNXEntry] = opts
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	c["model_info"] = b
	return json.Marshal(c)
}

// servedByText is Describe's ServedBy: the bundle's processor where it is not simply the
// canonical form of the one asked for ("" then).
func servedByText(asked string, man *bundle.Manifest) string {
	if p, err := spec.ResolveProcessor(asked); err == nil && p.Name == man.Processor {
		return ""
	}
	if man.TensorFlow != nil {
		return man.Processor + " (TensorFlow graph converted to ONNX)"
	}
	return man.Processor
}

// servedBy is the processor a bundle's workers run: converted TF models run on ONNX Runtime.
func servedBy(processor string, tfModel *bundle.TFModel) string {
	if tfModel != nil {
		return tfProcessor
	}
	return processor
}

// tfSignatures records sigs (as tf.ParseSavedModel read them from saved_model.pb b) for
// bundle.json: each alias with its tensor and the dtype and shape its TensorInfo declares.
// Where a TensorInfo declares no dtype, an input takes its placeholder's dtype and shape.
func tfSignatures(entry string, b []byte, sigs map[string]tf.SignatureDef, placeholders []bundle.TFTensor) (map[string]bundle.TFSignature, error) {
	defs, err := savedModelSignatureDefs(b)
	if err != nil {
		return nil, fmt.Errorf("SavedModel %s: read signature_def: %w", entry, err)
	}
	out := make(map[string]bundle.TFSignature, len(sigs))
	for name, sd := range sigs {
		rec := bundle.TFSignature{MethodName: sd.MethodName, Inputs: map[string]bundle.TFTensor{}, Outputs: map[string]bundle.TFTensor{}}
		def := defs[name]
		for alias, tensorName := range sd.Inputs {
			t := tfTensorInfo(tensorName, def.GetInputs()[alias])
			if t.DType == "" {
				for _, p := range placeholders {
					if p.Name == tensorName {
						t = p
					}
				}
			}
			rec.Inputs[alias] = t
		}
		for alias, tensorName := range sd.Outputs {
			rec.Outputs[alias] = tfTensorInfo(tensorName, def.GetOutputs()[alias])
		}
		out[name] = rec
	}
	return out, nil
}

// tfTensorInfo is a signature tensor as bundle.json records it: name as normalized by
// tf.ParseSavedModel ("x:0"), dtype "DT_FLOAT" ("" when undeclared), shape with -1 for
// unknown dims (nil when the rank is unknown or undeclared).
func tfTensorInfo(name string, ti *tfpb.TensorInfo) bundle.TFTensor {
	t := bundle.TFTensor{Name: name}
	if d := ti.GetDtype(); d != tfpb.DataType_DT_INVALID {
		t.DType = d.String()
	}
	if sh := ti.GetTensorShape(); sh != nil && !sh.GetUnknownRank() {
		t.Shape = make([]int64, len(sh.GetDim()))
		for i, d := range sh.GetDim() {
			t.Shape[i] = max(d.GetSize(), -1)
		}
	}
	return t
}

// savedModelSignatureDefs returns the signature_defs of a saved_model.pb's serving meta graph,
// picked as tf.ParseSavedModel picks it (tagged "serve", else the only one). Each meta graph is
// decoded without its graph_def, so the (possibly large) frozen graph is not decoded twice.
func savedModelSignatureDefs(b []byte) (map[string]*tfpb.SignatureDef, error) {
	var metas []*tfpb.MetaGraphDef
	err := protoFields(b, func(num protowire.Number, v []byte) error {
		if num != 2 { // SavedModel.meta_graphs
			return nil
		}
		var light []byte
		if err := protoFields(v, func(num protowire.Number, f []byte) error {
			if num != 2 { // MetaGraphDef.graph_def
				light = protowire.AppendTag(light, num, protowire.BytesType)
				light = protowire.AppendBytes(light, f)
			}
			return nil
		}); err != nil {
			return err
		}
		mg := &tfpb.MetaGraphDef{}
		if err := proto.Unmarshal(light, mg); err != nil {
			return err
		}
		metas = append(metas, mg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, mg := range metas {
		if slices.Contains(mg.GetMetaInfoDef().GetTags(), tf.ServeTag) {
			return mg.GetSignatureDef(), nil
		}
	}
	if len(metas) == 1 {
		return metas[0].GetSignatureDef(), nil
	}
	return nil, fmt.Errorf("no meta graph tagged %q", tf.ServeTag)
}

// protoFields calls fn with each length-delimited field of the message b; fields of other
// wire types are skipped (none of the fields read here has one).
func protoFields(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if err := fn(num, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
