package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/easpb/torchpb"
	"github.com/openeas/openeas/internal/tensor"
	"github.com/openeas/openeas/internal/torch"
)

// requireTorch skips unless make build produced the libtorch shim next to the binaries.
func requireTorch(t *testing.T, e env) string {
	t.Helper()
	shim := filepath.Join(e.bin, torch.ShimName)
	if _, err := os.Stat(shim); err != nil {
		t.Skipf("no %s in OPENEAS_BIN=%s: libtorch is not installed here (%s)", torch.ShimName, e.bin, torch.InstallHint)
	}
	if err := torch.Init(shim); err != nil {
		t.Fatal(err)
	}
	return shim
}

// torchPredict posts an EAS PyTorch protobuf request with positional inputs.
func torchPredict(t *testing.T, d *easd, name, token string, inputs ...*torchpb.ArrayProto) (int, *torchpb.PredictResponse, string) {
	t.Helper()
	body, err := proto.Marshal(&torchpb.PredictRequest{Inputs: inputs})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", d.url("/api/predict/"+name), bytes.NewReader(body))
	req.Header.Set("Authorization", token)
	code, b, err := do(req)
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 {
		return code, nil, string(b)
	}
	var resp torchpb.PredictResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		t.Fatalf("response: %v", err)
	}
	return code, &resp, ""
}

func floatArray(shape []int64, v []float32) *torchpb.ArrayProto {
	return &torchpb.ArrayProto{Dtype: torchpb.ArrayDataType_DT_FLOAT, ArrayShape: &torchpb.ArrayShape{Dim: shape}, FloatVal: v}
}

// TestPyTorchService deploys the TorchScript CNN (conv + BN) as pytorch_cpu_1.13 with the
// Blade plugin from a seed-like service.json, predicts through the EAS PyTorch protobuf and
// v2 JSON, checks the values against libtorch run directly on the original model, checks
// 400s for bad inputs, scales and restarts easd (the bundle is reused), and checks that a
// corrupt TorchScript file fails the service with libtorch's reason.
func TestPyTorchService(t *testing.T) {
	e := requireEnv(t)
	requireTorch(t, e)
	top := t // a restarted easd must outlive the subtest that restarts it
	d := startEasd(t, e, "")
	src := filepath.Join(e.repo, "internal/torch/testdata/cnn_bn.pt")
	modelDir := t.TempDir()
	copyFileE2E(t, src, filepath.Join(modelDir, "model.pt"))
	svcFile := writeJSON(t, filepath.Join(t.TempDir(), "service.json"), map[string]any{
		"name":       "torch_cnn",
		"model_path": modelDir,
		"processor":  "pytorch_cpu_1.13",
		"metadata":   map[string]any{"instance": 1, "cpu": 1, "memory": 2000},
		"plugins": []any{map[string]any{
			"command": "blade --mode eas_plugin --optimize_for cpu",
			"image":   "registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest",
			"config": map[string]any{"model_info": map[string]any{"model.pt": map[string]any{
				"optimization_level": "o1",
				"input_shapes":       [][]string{{"1*3*16*16"}, {"2*3*16*16"}},
			}}},
		}},
	})
	if out, err := d.eascmd("create", svcFile); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	s := d.waitStatus("torch_cnn", api.StatusRunning, 3*time.Minute)
	token, image := s.AccessToken, s.Image
	if n := countEvents(t, d, "torch_cnn", "Executing plugin"); n != 1 {
		t.Errorf("plugin ran %d times:\n%s", n, d.eventText("torch_cnn"))
	}

	ref, err := torch.Load(src, torch.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	x := make([]float32, 2*3*16*16)
	for i := range x {
		x[i] = float32(i%11)/5 - 1
	}
	want, err := ref.Forward(context.Background(), []*tensor.Tensor{{DType: tensor.Float, Shape: []int64{2, 3, 16, 16}, Data: f32bytes(x)}})
	if err != nil {
		t.Fatal(err)
	}
	wantVals := bytesF32(want[0].Tensor.Data)

	t.Run("protobuf and v2 JSON predictions equal libtorch's", func(t *testing.T) {
		code, resp, msg := torchPredict(t, d, "torch_cnn", token, floatArray([]int64{2, 3, 16, 16}, x))
		if code != 200 {
			t.Fatalf("predict: %d %s", code, msg)
		}
		if len(resp.Outputs) != 1 || len(resp.Outputs[0].ArrayShape.Dim) != 2 || resp.Outputs[0].ArrayShape.Dim[1] != 5 {
			t.Fatalf("response %v", resp)
		}
		// Blade may ship the frozen model (conv-bn folded): inside the o1 budget, not bitwise.
		assertClose(t, "protobuf output", resp.Outputs[0].FloatVal, wantVals, 1e-4)

		v2 := map[string]any{"inputs": []any{map[string]any{"name": "image", "shape": []int{2, 3, 16, 16}, "datatype": "FP32", "data": x}}}
		b, _ := json.Marshal(v2)
		req, _ := http.NewRequest("POST", d.url("/api/predict/torch_cnn/v2/models/torch_cnn/infer"), bytes.NewReader(b))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		code, body, err := do(req)
		if err != nil || code != 200 {
			t.Fatalf("v2 infer: %d %s %v", code, body, err)
		}
		var out struct {
			Outputs []struct {
				Name string    `json:"name"`
				Data []float32 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out.Outputs) != 1 || out.Outputs[0].Name != "output_0" {
			t.Fatalf("v2 response %s: %v", body, err)
		}
		assertClose(t, "v2 output", out.Outputs[0].Data, wantVals, 1e-4)
	})

	t.Run("bad inputs are 400s naming the input", func(t *testing.T) {
		cases := []struct {
			name string
			in   []*torchpb.ArrayProto
			says string
		}{
			{"wrong shape", []*torchpb.ArrayProto{floatArray([]int64{1, 3, 8, 16}, make([]float32, 384))}, `input "image": shape [1 3 8 16], expected [?,3,16,16]`},
			{"wrong dtype", []*torchpb.ArrayProto{{Dtype: torchpb.ArrayDataType_DT_STRING, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1}}, StringVal: [][]byte{[]byte("a")}}}, `image`},
			{"too many inputs", []*torchpb.ArrayProto{floatArray([]int64{1}, []float32{1}), floatArray([]int64{1}, []float32{1})}, "positional inputs; the model takes 1"},
		}
		for _, c := range cases {
			code, _, msg := torchPredict(t, d, "torch_cnn", token, c.in...)
			if code != 400 || !strings.Contains(msg, c.says) {
				t.Errorf("%s: %d %q; want 400 mentioning %q", c.name, code, msg, c.says)
			}
		}
	})

	t.Run("scale and restart reuse the bundle", func(t *testing.T) {
		if out, err := d.eascmd("modify", "torch_cnn", "-Dmetadata.instance=2"); err != nil {
			t.Fatalf("modify: %v\n%s", err, out)
		}
		if s := d.waitStatus("torch_cnn", api.StatusRunning, 2*time.Minute); s.RunningInstance != 2 || s.Image != image {
			t.Fatalf("after scaling: %+v (image was %s)", s, image)
		}
		d.stop()
		d2 := startEasd(top, e, d.dataDir)
		*d = *d2
		if s := d.waitStatus("torch_cnn", api.StatusRunning, 2*time.Minute); s.Image != image {
			t.Fatalf("after restart: image %s, was %s", s.Image, image)
		}
		if n := countEvents(t, d, "torch_cnn", "Executing plugin"); n != 1 {
			t.Errorf("the plugin ran %d times, want once:\n%s", n, d.eventText("torch_cnn"))
		}
		code, resp, msg := torchPredict(t, d, "torch_cnn", token, floatArray([]int64{2, 3, 16, 16}, x))
		if code != 200 {
			t.Fatalf("predict after restart: %d %s", code, msg)
		}
		assertClose(t, "after restart", resp.Outputs[0].FloatVal, wantVals, 1e-4)
	})

	t.Run("a corrupt TorchScript file fails the service with libtorch's reason", func(t *testing.T) {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, "model.pt"), []byte("PK\x03\x04 truncated"), 0o644); err != nil {
			t.Fatal(err)
		}
		f := writeJSON(t, filepath.Join(t.TempDir(), "bad.json"), map[string]any{
			"name": "torch_bad", "model_path": bad, "processor": "pytorch", "metadata": map[string]any{"instance": 1},
		})
		if out, err := d.eascmd("create", f); err != nil {
			t.Logf("create: %v\n%s", err, out)
		}
		s := d.waitStatus("torch_bad", api.StatusFailed, 2*time.Minute)
		if text := s.Message + d.eventText("torch_bad"); !strings.Contains(text, "libtorch load") || !strings.Contains(text, "model.pt") {
			t.Errorf("failure does not name libtorch and the file: %s\n%s", s.Message, d.eventText("torch_bad"))
		}
	})
}

// TestPyTorchWithoutLibtorch: an installation without the shim refuses a PyTorch service
// at create time, saying what to install.
func TestPyTorchWithoutLibtorch(t *testing.T) {
	e := requireEnv(t)
	bin := t.TempDir()
	for _, b := range []string{"easd", "eas-worker", "eascmd"} {
		if out, err := exec.Command("cp", filepath.Join(e.bin, b), filepath.Join(bin, b)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v %s", b, err, out)
		}
	}
	noTorch := e
	noTorch.bin = bin
	d := startEasd(t, noTorch, "")
	modelDir := t.TempDir()
	copyFileE2E(t, filepath.Join(e.repo, "internal/torch/testdata/mlp.pt"), filepath.Join(modelDir, "model.pt"))
	f := writeJSON(t, filepath.Join(t.TempDir(), "svc.json"), map[string]any{
		"name": "torch_missing", "model_path": modelDir, "processor": "pytorch_cpu_1.10", "metadata": map[string]any{"instance": 1},
	})
	out, err := d.eascmd("create", f)
	if err == nil || !strings.Contains(out, "apt-get install libtorch-dev libopenblas0-pthread") {
		t.Fatalf("create without libtorch: %v\n%s\nwant a refusal saying what to install", err, out)
	}
}
