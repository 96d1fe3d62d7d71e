package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/onnxrt"
	"github.com/openeas/openeas/internal/tensor"
	tfgraph "github.com/openeas/openeas/internal/tf/tfpb"
)

// copyFileE2E copies src to dst.
func copyFileE2E(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTensorFlowFrozenGraph deploys a real TF graph (the emotion classifier of
// @vladmandic/human, as a frozen.pb) as tensorflow_cpu_1.15 with the Blade plugin configured
// like the seed's example 3 (model_info keyed "frozen.pb", TF tensor names, a .npy feed-dict
// test_data), predicts through the EAS TF protobuf format with TF names, and checks the
// answer against TensorFlow.js's. A graph with an unsupported op fails the create naming it.
func TestTensorFlowFrozenGraph(t *testing.T) {
	e := requireEnv(t)
	if _, err := os.Stat(filepath.Join(e.bin, "blade")); err != nil {
		t.Fatalf("blade missing in OPENEAS_BIN=%s: run make build", e.bin)
	}
	d := startEasd(t, e, "")
	src := filepath.Join(e.repo, "testdata/tf/emotion")
	modelDir := t.TempDir()
	for _, f := range []string{"frozen.pb", "test_data.npy"} {
		copyFileE2E(t, filepath.Join(src, f), filepath.Join(modelDir, f))
	}
	ref := loadTFRef(t, src)

	svcFile := writeJSON(t, filepath.Join(t.TempDir(), "service.json"), map[string]any{
		"name":       "tf_emotion",
		"model_path": modelDir,
		"processor":  "tensorflow_cpu_1.15",
		"metadata":   map[string]any{"instance": 1, "cpu": 1, "memory": 2000},
		"plugins": []any{map[string]any{
			"command": "blade --mode eas_plugin --optimize_for cpu",
			"image":   "registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest",
			"config": map[string]any{"model_info": map[string]any{"frozen.pb": map[string]any{
				"optimization_level": "o1",
				"inputs":             []string{"input_1"},
				"outputs":            []string{"Identity:0"},
				"test_data":          "test_data.npy",
			}}},
		}},
	})
	if out, err := d.eascmd("create", svcFile); err != nil {
		t.Fatalf("eascmd create: %v\n%s", err, out)
	}
	svc := d.waitStatus("tf_emotion", api.StatusRunning, 4*time.Minute)
	if svc.ServedBy != "onnxruntime_cpu (TensorFlow graph converted to ONNX)" {
		t.Errorf("desc ServedBy %q, want the converted model's runtime", svc.ServedBy)
	}
	events := d.eventText("tf_emotion")
	if !strings.Contains(events, "Converted TensorFlow GraphDef frozen.pb to ONNX: 45 nodes → ") {
		t.Errorf("no conversion event:\n%s", events)
	}
	if !strings.Contains(events, "Executing plugin eas-plugin-") {
		t.Errorf("Blade did not run:\n%s", events)
	}

	x := ref.Inputs[0].raw(t)
	xs := ref.Inputs[0].float32s(t)
	want := ref.Outputs[0].float32s(t)
	for _, names := range [][2]string{{"input_1:0", "Identity:0"}, {"input_1", "Identity"}} {
		req := &tfpb.PredictRequest{
			SignatureName: "serving_default",
			Inputs: map[string]*tfpb.ArrayProto{names[0]: {
				Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: ref.Inputs[0].Shape}, FloatVal: xs}},
			OutputFilter: []string{names[1]},
		}
		pb, _ := proto.Marshal(req)
		hr, _ := http.NewRequest("POST", d.url("/api/predict/tf_emotion"), bytes.NewReader(pb))
		hr.Header.Set("Authorization", svc.AccessToken)
		code, body, err := do(hr)
		if err != nil || code != 200 {
			t.Fatalf("predict with %v: %d %v %s", names, code, err, body)
		}
		var resp tfpb.PredictResponse
		if err := proto.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Outputs) != 1 {
			t.Fatalf("predict with %v: %d outputs, want the filtered one", names, len(resp.Outputs))
		}
		for _, o := range resp.Outputs {
			checkNormRelErr(t, fmt.Sprintf("predict with %v", names), o.GetFloatVal(), want)
		}
	}

	// Served latency (gateway → worker → ONNX Runtime) against ONNX Runtime run in this process
	// on the bundle's own model with the bundle's runtime settings, interleaved so both see
	// the same machine load: for docs/benchmarks.md (figures only; no threshold).
	pb, _ := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{"input_1:0": {
		Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: ref.Inputs[0].Shape}, FloatVal: xs}}})
	direct := openBundleModel(t, e, d, svc.Image)
	in := map[string]*tensor.Tensor{direct.Signature().Inputs[0].Name: {DType: tensor.Float, Shape: ref.Inputs[0].Shape, Data: x}}
	var served, inproc []time.Duration
	// Alternating blocks, not single runs: a just-finished run's spinning ORT threads would
	// otherwise tax the next run of the other kind.
	for range 4 {
		for range 10 {
			hr, _ := http.NewRequest("POST", d.url("/api/predict/tf_emotion"), bytes.NewReader(pb))
			hr.Header.Set("Authorization", svc.AccessToken)
			t0 := time.Now()
			if code, body, err := do(hr); err != nil || code != 200 {
				t.Fatalf("predict: %d %v %s", code, err, body)
			}
			served = append(served, time.Since(t0))
		}
		for range 10 {
			t0 := time.Now()
			if _, err := direct.Predict(context.Background(), in, nil); err != nil {
				t.Fatal(err)
			}
			inproc = append(inproc, time.Since(t0))
		}
	}
	t.Logf("FIGURE converted emotion model, 4 alternating blocks of 10 runs: served (TF protobuf via easd) %s; ORT in process on the bundle's model and runtime.json %s",
		spread(served), spread(inproc))

	// An unsupported op fails the deploy, naming it and its node.
	bad := &tfgraph.GraphDef{Node: []*tfgraph.NodeDef{
		{Name: "x", Op: "Placeholder", Attr: map[string]*tfgraph.AttrValue{"dtype": {Value: &tfgraph.AttrValue_Type{Type: tfgraph.DataType_DT_FLOAT}}}},
		{Name: "spectrum", Op: "FFT", Input: []string{"x"}},
	}}
	badDir := t.TempDir()
	bb, _ := proto.Marshal(bad)
	if err := os.WriteFile(filepath.Join(badDir, "frozen.pb"), bb, 0o644); err != nil {
		t.Fatal(err)
	}
	badFile := writeJSON(t, filepath.Join(t.TempDir(), "bad.json"), map[string]any{
		"name": "tf_bad", "model_path": badDir, "processor": "tensorflow", "metadata": map[string]any{"instance": 1},
	})
	d.eascmd("create", badFile) // fails; the status says why
	failed := d.waitStatus("tf_bad", api.StatusFailed, time.Minute)
	if !strings.Contains(failed.Message+d.eventText("tf_bad"), "FFT in node(s) spectrum") {
		t.Errorf("failure does not name the unsupported op: %s\n%s", failed.Message, d.eventText("tf_bad"))
	}
}

// openBundleModel opens a deployed bundle's model in this process, with the bundle's runtime
// settings, as its workers do.
func openBundleModel(t *testing.T, e env, d *easd, image string) processor.Processor {
	t.Helper()
	dir := filepath.Join(d.dataDir, "bundles", strings.TrimPrefix(image, "sha256:"))
	b, err := os.ReadFile(filepath.Join(dir, bundle.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var man bundle.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if err := ort.Init(e.ortLib); err != nil {
		t.Fatal(err)
	}
	p, err := onnxrt.Open(filepath.Join(dir, "model", filepath.FromSlash(man.ModelEntry)), man.Runtime)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// spread formats durations as "median (min–max)".
func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("%s (%s–%s)", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]))
}
