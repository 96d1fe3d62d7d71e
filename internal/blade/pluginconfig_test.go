package blade

import (
	"reflect"
	"testing"
)

func TestParsePluginConfig(t *testing.T) {
	files := []string{"model.onnx", "test.npy", "calib.pth", "README"}
	tests := []struct {
		name    string
		config  string
		files   []string
		want    *PluginRequest
		wantErr string
	}{
		{
			name:   "no config: single onnx with defaults",
			config: `{"processor":"onnxruntime_cpu","metadata":{"instance":1}}`,
			want:   &PluginRequest{ModelFile: "model.onnx", Processor: "onnxruntime_cpu", Options: Options{Level: "o1"}},
		},
		{
			name:   "empty file",
			config: ``,
			want:   &PluginRequest{ModelFile: "model.onnx", Options: Options{Level: "o1"}},
		},
		{
			name: "every seed key",
			config: `{"config":{"model_info":{"model.onnx":{
				"optimization_level":"o2","test_data":"test.npy","calibration_dataset":"calib.pth",
				"inputs":["x"],"outputs":["y"],
				"input_shapes":[["1*3*48*192"],["8*3*48*192"]],
				"input_ranges":[["[0.0,1.0]"]],
				"quantization":{"weight_adjustment":"auto"},
				"accuracy":{"min_cosine":0.995,"min_top1_agreement":0.98}}}},
				"processor":"onnxruntime_cpu","metadata":{"cpu":2}}`,
			want: &PluginRequest{ModelFile: "model.onnx", Processor: "onnxruntime_cpu", Options: Options{
				Level: "o2", TestData: "test.npy", CalibrationDataset: "calib.pth",
				Inputs: []string{"x"}, Outputs: []string{"y"},
				InputShapes:      [][]string{{"1*3*48*192"}, {"8*3*48*192"}},
				InputRanges:      [][]string{{"[0.0,1.0]"}},
				WeightAdjustment: "auto",
				Accuracy:         AccuracyBudget{MinCosine: 0.995, MinTop1Agreement: 0.98},
			}},
		},
		{
			name:   "weight_adjustment as a JSON boolean",
			config: `{"config":{"model_info":{"model.onnx":{"quantization":{"weight_adjustment":true}}}}}`,
			want:   &PluginRequest{ModelFile: "model.onnx", Options: Options{Level: "o1", WeightAdjustment: "true"}},
		},
		{
			name:    "shape given as a number",
			config:  `{"config":{"model_info":{"model.onnx":{"input_shapes":[["1*512", 512]]}}}}`,
			wantErr: `config.model_info["model.onnx"].input_shapes[0][1]: expected a string like "1*512", found the number 512`,
		},
		{
			name:    "shape string malformed",
			config:  `{"config":{"model_info":{"model.onnx":{"input_shapes":[["1x512"]]}}}}`,
			wantErr: `config.model_info["model.onnx"].input_shapes[0][0]: expected a string like "1*512", found "1x512"`,
		},
		{
			name:    "shapes not nested",
			config:  `{"config":{"model_info":{"model.onnx":{"input_shapes":["1*512"]}}}}`,
			wantErr: `config.model_info["model.onnx"].input_shapes[0]: expected a list with one string per input, found a string`,
		},
		{
			name:    "range malformed",
			config:  `{"config":{"model_info":{"model.onnx":{"input_ranges":[["[2.0,1.0]"]]}}}}`,
			wantErr: `config.model_info["model.onnx"].input_ranges[0][0]: expected a string like "[1.0,2.0]", found "[2.0,1.0]"`,
		},
		{
			name:    "shape sets of different widths",
			config:  `{"config":{"model_info":{"model.onnx":{"input_shapes":[["1*2","3"],["1*2"]]}}}}`,
			wantErr: `config.model_info["model.onnx"].input_shapes[1]: has 1 entries, expected 2 (one per input)`,
		},
		{
			name:    "unknown option key",
			config:  `{"config":{"model_info":{"model.onnx":{"optimisation_level":"o1"}}}}`,
			wantErr: `config.model_info["model.onnx"].optimisation_level: unknown key (known: accuracy, calibration_dataset, input_ranges, input_shapes, inputs, optimization_level, outputs, quantization, test_data)`,
		},
		{
			name:    "unknown config key",
			config:  `{"config":{"model_info":{},"extra":1}}`,
			wantErr: `config.extra: unknown key (blade's config has only model_info)`,
		},
		{
			name:    "level wrong type",
			config:  `{"config":{"model_info":{"model.onnx":{"optimization_level":2}}}}`,
			wantErr: `config.model_info["model.onnx"].optimization_level: expected a string, found the number 2`,
		},
		{
			name:    "level unknown",
			config:  `{"config":{"model_info":{"model.onnx":{"optimization_level":"o3"}}}}`,
			wantErr: `config.model_info["model.onnx"].optimization_level: expected "o1" or "o2", found "o3"`,
		},
		{
			name:    "inputs not a list",
			config:  `{"config":{"model_info":{"model.onnx":{"inputs":"x"}}}}`,
			wantErr: `config.model_info["model.onnx"].inputs: expected a list of strings, found a string`,
		},
		{
			name:    "weight_adjustment bad value",
			config:  `{"config":{"model_info":{"model.onnx":{"quantization":{"weight_adjustment":"yes"}}}}}`,
			wantErr: `config.model_info["model.onnx"].quantization.weight_adjustment: expected true, false, "true", "false" or "auto", found "yes"`,
		},
		{
			name:    "quantization unknown key",
			config:  `{"config":{"model_info":{"model.onnx":{"quantization":{"smooth":true}}}}}`,
			wantErr: `config.model_info["model.onnx"].quantization.smooth: unknown key (quantization has only weight_adjustment)`,
		},
		{
			name:    "accuracy out of range",
			config:  `{"config":{"model_info":{"model.onnx":{"accuracy":{"min_cosine":1.5}}}}}`,
			wantErr: `config.model_info["model.onnx"].accuracy.min_cosine: expected a number in [0,1], found 1.5`,
		},
		{
			name:    "model file missing",
			config:  `{"config":{"model_info":{"frozen.pb":{}}}}`,
			wantErr: `config.model_info["frozen.pb"]: no such file in the model directory; it holds: model.onnx, test.npy, calib.pth, README`,
		},
		{
			name:    "test data missing",
			config:  `{"config":{"model_info":{"model.onnx":{"test_data":"nope.npy"}}}}`,
			wantErr: `config.model_info["model.onnx"].test_data: "nope.npy" is not a file in the model directory; it holds: model.onnx, test.npy, calib.pth, README`,
		},
		{
			name:    "two models",
			config:  `{"config":{"model_info":{"a.onnx":{},"b.onnx":{}}}}`,
			wantErr: `config.model_info: configures 2 models (a.onnx, b.onnx); blade optimizes one model per plugin run`,
		},
		{
			name:    "no model_info and two onnx files",
			config:  `{}`,
			files:   []string{"a.onnx", "b.onnx"},
			wantErr: `plugin config: no config.model_info and the input has 2 .onnx files (a.onnx, b.onnx): name the model in config.model_info`,
		},
		{
			name:    "model_info not an object",
			config:  `{"config":{"model_info":[]}}`,
			wantErr: `config.model_info: expected an object keyed by model file name, found a list`,
		},
		{
			name:    "not JSON",
			config:  `{"config":`,
			wantErr: `plugin config: not valid JSON: unexpected EOF`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := files
			if tc.files != nil {
				fs = tc.files
			}
			got, err := ParsePluginConfig([]byte(tc.config), fs)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v\nwant    %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseShapeAndRange(t *testing.T) {
	if s, err := ParseShape("1*3*224*224"); err != nil || !reflect.DeepEqual(s, []int64{1, 3, 224, 224}) {
		t.Fatalf("ParseShape = %v, %v", s, err)
	}
	for _, bad := range []string{"1x2", "1**2", "-1*2", "a"} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("ParseShape(%q) accepted", bad)
		}
	}
	if r, err := ParseRange("[ -1.5 , 2 ]"); err != nil || r != (Range{-1.5, 2}) {
		t.Fatalf("ParseRange = %v, %v", r, err)
	}
	if r, err := ParseRange("[a,z]"); err != nil || r != (Range{'a', 'z'}) {
		t.Fatalf("ParseRange chars = %v, %v", r, err)
	}
	for _, bad := range []string{"1,2", "[1;2]", "[3,1]", "[nan,1]", "[ab,c]"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}
