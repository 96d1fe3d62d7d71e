package deploy

import (
	"encoding/json"
	"testing"
)

func TestTFPluginConfigRekeysToONNX(t *testing.T) {
	in := `{"model_info":{"frozen.pb":{"optimization_level":"o1","inputs":["input_ids_a_1"],"outputs":["l2_normalize:0","split:1"],"test_data":"t.npy"}}}`
	out, err := tfPluginConfig(json.RawMessage(in), "frozen.pb")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ModelInfo map[string]struct {
			Inputs   []string `json:"inputs"`
			Outputs  []string `json:"outputs"`
			TestData string   `json:"test_data"`
		} `json:"model_info"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	o, ok := got.ModelInfo["model.onnx"]
	if !ok || len(got.ModelInfo) != 1 {
		t.Fatalf("model_info keys %v, want only model.onnx", got.ModelInfo)
	}
	if o.Inputs[0] != "input_ids_a_1" || o.Outputs[0] != "l2_normalize" || o.Outputs[1] != "split:1" || o.TestData != "t.npy" {
		t.Errorf("options %+v", o)
	}
	// Configs for other files, and empty configs, pass unchanged.
	for _, c := range []string{``, `null`, `{"model_info":{"other.pb":{}}}`} {
		out, err := tfPluginConfig(json.RawMessage(c), "frozen.pb")
		if err != nil || string(out) != c {
			t.Errorf("%q → %q, %v", c, out, err)
		}
	}
}
