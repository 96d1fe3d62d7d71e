package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/easpb/tfpb"
)

// tfFixtureCache is where scripts/tf-fixtures.sh builds the TF fixtures (make test runs it).
func tfFixtureCache() string {
	if d := os.Getenv("OPENEAS_CACHE"); d != "" {
		return filepath.Join(d, "tf")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "openeas", "tf")
}

// tfDeployment is one fixture graph deployed as one service.
type tfDeployment struct {
	fixture, file, service string
	dir                    string // the fixture directory (reference.json)
	ref                    tfRef
	svc                    *api.Service
}

var servicePluginID = regexp.MustCompile(`Executing plugin (eas-plugin-[0-9a-f]+)`)

// TestTFFixturesDeployed deploys every TF fixture of the cache (the tfjs models
// scripts/tf-fixtures.sh freezes), fused (frozen.pb) and un-fused (frozen-unfused.pb, uploaded
// as frozen.pb), as tensorflow_cpu_1.15 with the Blade plugin from a service.json shaped like
// the seed's example 3, predicts once per service through the EAS TF protobuf format with TF
// names and the reference inputs in their dtypes, and checks every output against tfjs's.
func TestTFFixturesDeployed(t *testing.T) {
	e := requireEnv(t)
	if _, err := os.Stat(filepath.Join(e.bin, "blade")); err != nil {
		t.Fatalf("blade missing in OPENEAS_BIN=%s: run make build", e.bin)
	}
	cache := tfFixtureCache()
	deps := tfFixtureDeployments(t, cache)
	if len(deps) == 0 {
		t.Skipf("no TF fixtures (reference.json + frozen.pb) in %s: run scripts/tf-fixtures.sh (make test does)", cache)
	}
	d := startEasd(t, e, "")

	// Create all, then wait: easd converts, optimizes and starts them in parallel.
	start := time.Now()
	for _, dep := range deps {
		modelDir := t.TempDir()
		copyFileE2E(t, filepath.Join(dep.dir, dep.file), filepath.Join(modelDir, "frozen.pb"))
		var ins, outs []string
		for _, in := range dep.ref.Inputs {
			ins = append(ins, in.Name)
		}
		for _, o := range dep.ref.Outputs {
			outs = append(outs, o.Name)
		}
		svcFile := writeJSON(t, filepath.Join(t.TempDir(), "service.json"), map[string]any{
			"name":       dep.service,
			"metadata":   map[string]any{"cpu": 1, "instance": 1, "memory": 2000},
			"model_path": modelDir,
			"plugins": []any{map[string]any{
				// Blade's defaults time 50 runs per candidate on 1 and NumCPU threads; five
				// runs on one thread still exercise the plugin (convert, verify, time, pick)
				// while keeping ten concurrent deploys within CI's budget on 2 cores.
				"command": "blade --mode eas_plugin --optimize_for cpu --runs 5 --threads 1",
				"image":   "registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest",
				"config": map[string]any{"model_info": map[string]any{"frozen.pb": map[string]any{
					"optimization_level": "o1",
					"inputs":             ins,
					"outputs":            outs,
				}}},
			}},
			"processor": "tensorflow_cpu_1.15",
		})
		if out, err := d.eascmd("create", svcFile); err != nil {
			t.Fatalf("eascmd create %s (%s/%s): %v\n%s", dep.service, dep.fixture, dep.file, err, out)
		}
	}
	for _, dep := range deps {
		dep.svc = d.waitStatus(dep.service, api.StatusRunning, 8*time.Minute)
	}
	t.Logf("%d services deployed in %s", len(deps), time.Since(start).Round(time.Millisecond))

	plugins := map[string]string{} // service → its Blade plugin run's ID
	for _, dep := range deps {
		t.Run(dep.fixture+"/"+dep.file, func(t *testing.T) {
			events := d.eventText(dep.service)
			if !strings.Contains(events, "Converted TensorFlow GraphDef frozen.pb to ONNX: ") {
				t.Errorf("no conversion event:\n%s", events)
			}
			m := servicePluginID.FindStringSubmatch(events)
			if m == nil || !strings.Contains(events, "pai-blade-deploy:cpu_latest") {
				t.Errorf("Blade did not run:\n%s", events)
			} else {
				plugins[dep.service] = m[1]
			}
			checkTFFixturePrediction(t, d, dep)
		})
	}

	// The unfused graph may convert to the same ONNX model as the fused one (the converter
	// fuses what tfjs's converter did), and the two then share the plugin's cached result.
	// Identical GraphDefs must.
	for _, dep := range deps {
		if dep.file != "frozen-unfused.pb" {
			continue
		}
		fused := tfServiceName(dep.fixture, "frozen.pb")
		a, b := plugins[fused], plugins[dep.service]
		if a == "" || b == "" {
			continue
		}
		same := bytes.Equal(readFileE2E(t, filepath.Join(dep.dir, "frozen.pb")), readFileE2E(t, filepath.Join(dep.dir, dep.file)))
		switch {
		case same && a != b:
			t.Errorf("%s: frozen.pb and frozen-unfused.pb are identical but ran different plugins %s and %s", dep.fixture, a, b)
		case a == b:
			t.Logf("%s: fused and unfused share plugin run %s (identical GraphDefs: %v)", dep.fixture, a, same)
		default:
			t.Logf("%s: fused and unfused convert to different ONNX models (plugin runs %s, %s)", dep.fixture, a, b)
		}
	}
}

// tfFixtureDeployments lists the fixtures in cache, each graph (fused, unfused) as one
// service, in a stable order.
func tfFixtureDeployments(t *testing.T, cache string) []*tfDeployment {
	t.Helper()
	ents, err := os.ReadDir(cache)
	if err != nil {
		return nil
	}
	var deps []*tfDeployment
	for _, ent := range ents {
		dir := filepath.Join(cache, ent.Name())
		if _, err := os.Stat(filepath.Join(dir, "reference.json")); err != nil {
			continue
		}
		ref := loadTFRef(t, dir)
		for _, file := range []string{"frozen.pb", "frozen-unfused.pb"} {
			if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
				continue
			}
			deps = append(deps, &tfDeployment{fixture: ent.Name(), file: file, service: tfServiceName(ent.Name(), file), dir: dir, ref: ref})
		}
	}
	return deps
}

// tfServiceName is a valid service name (lowercase, digits, underscores) for a fixture graph.
func tfServiceName(fixture, file string) string {
	kind := "fused"
	if file == "frozen-unfused.pb" {
		kind = "unfused"
	}
	return "tffix_" + strings.ReplaceAll(fixture, "-", "_") + "_" + kind
}

// checkTFFixturePrediction predicts once through the EAS TF protobuf format, inputs named
// "name:0" in their reference dtypes and output_filter naming every reference output, and
// compares each output to tfjs's: max |got − ref| ≤ 1e-4 · max |ref| (a norm-wise relative
// error that does not blow up on outputs near zero).
func checkTFFixturePrediction(t *testing.T, d *easd, dep *tfDeployment) {
	t.Helper()
	req := &tfpb.PredictRequest{SignatureName: "serving_default", Inputs: map[string]*tfpb.ArrayProto{}}
	for _, in := range dep.ref.Inputs {
		a := &tfpb.ArrayProto{ArrayShape: &tfpb.ArrayShape{Dim: in.Shape}}
		switch in.DType {
		case "float32":
			a.Dtype = tfpb.ArrayDataType_DT_FLOAT
			a.FloatVal = in.float32s(t)
		case "int32":
			a.Dtype = tfpb.ArrayDataType_DT_INT32
			a.IntVal = in.int32s(t)
		default:
			t.Fatalf("input %s: reference dtype %q not handled by this test", in.Name, in.DType)
		}
		req.Inputs[in.Name+":0"] = a
	}
	for _, o := range dep.ref.Outputs {
		req.OutputFilter = append(req.OutputFilter, o.Name)
	}
	pb, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest("POST", d.url("/api/predict/"+dep.service), bytes.NewReader(pb))
	hr.Header.Set("Authorization", dep.svc.AccessToken)
	code, body, err := do(hr)
	if err != nil || code != 200 {
		t.Fatalf("predict: %d %v %s", code, err, tail(string(body), 5))
	}
	var resp tfpb.PredictResponse
	if err := proto.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode TF protobuf answer: %v", err)
	}
	if len(resp.Outputs) != len(dep.ref.Outputs) {
		t.Errorf("%d outputs %v, want the %d of output_filter", len(resp.Outputs), slices.Sorted(maps.Keys(resp.Outputs)), len(dep.ref.Outputs))
	}
	for _, o := range dep.ref.Outputs {
		got, ok := resp.Outputs[o.Name]
		if !ok {
			t.Errorf("output %s missing from the answer (has %v)", o.Name, slices.Sorted(maps.Keys(resp.Outputs)))
			continue
		}
		if shape := got.GetArrayShape().GetDim(); !slices.Equal(shape, o.Shape) {
			t.Errorf("output %s: shape %v, tfjs %v", o.Name, shape, o.Shape)
			continue
		}
		want := refFloats(t, o)
		g, err := arrayFloats(got)
		if err != nil {
			t.Errorf("output %s: %v", o.Name, err)
			continue
		}
		if len(g) != len(want) {
			t.Errorf("output %s: %d values, tfjs %d", o.Name, len(g), len(want))
			continue
		}
		maxAbs, maxDiff := 0.0, 0.0
		for i := range want {
			maxAbs = math.Max(maxAbs, math.Abs(want[i]))
			maxDiff = math.Max(maxDiff, math.Abs(g[i]-want[i]))
		}
		if rel := maxDiff / math.Max(maxAbs, 1e-12); rel > 1e-4 {
			t.Errorf("output %s %v: relative error %.3g > 1e-4 (max difference %.3g, max |ref| %.3g)", o.Name, o.Shape, rel, maxDiff, maxAbs)
		} else {
			t.Logf("output %s %v: relative error %.3g", o.Name, o.Shape, rel)
		}
	}
}

// refFloats is a reference value as float64s.
func refFloats(t *testing.T, v tfRefTensor) []float64 {
	t.Helper()
	var out []float64
	switch v.DType {
	case "float32":
		for _, f := range v.float32s(t) {
			out = append(out, float64(f))
		}
	case "int32":
		for _, n := range v.int32s(t) {
			out = append(out, float64(n))
		}
	default:
		t.Fatalf("%s: %s: dtype %q not handled by this test", v.file, v.Name, v.DType)
	}
	return out
}

// arrayFloats is an answer's values as float64s, whatever numeric dtype the server chose.
func arrayFloats(a *tfpb.ArrayProto) ([]float64, error) {
	var out []float64
	switch a.GetDtype() {
	case tfpb.ArrayDataType_DT_FLOAT:
		for _, v := range a.GetFloatVal() {
			out = append(out, float64(v))
		}
	case tfpb.ArrayDataType_DT_DOUBLE:
		out = a.GetDoubleVal()
	case tfpb.ArrayDataType_DT_INT32:
		for _, v := range a.GetIntVal() {
			out = append(out, float64(v))
		}
	case tfpb.ArrayDataType_DT_INT64:
		for _, v := range a.GetInt64Val() {
			out = append(out, float64(v))
		}
	default:
		return nil, fmt.Errorf("dtype %s is not numeric", a.GetDtype())
	}
	return out, nil
}

func readFileE2E(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
