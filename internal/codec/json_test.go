package codec

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/tensor"
)

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		dt    tensor.DType
		value string         // the input value sent for x
		want  *tensor.Tensor // what the model gets
		reply string         // want written back as output y
	}{
		{"float32 matrix", tensor.Float, `[[1, 2.5], [3, -4e-3]]`,
			&tensor.Tensor{DType: tensor.Float, Shape: []int64{2, 2}, Data: f32s(1, 2.5, 3, -4e-3)}, `[[1,2.5],[3,-0.004]]`},
		{"float32 nan and infinities", tensor.Float, `[NaN, Infinity, -Infinity]`,
			&tensor.Tensor{DType: tensor.Float, Shape: []int64{3}, Data: f32s(float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)))}, `[NaN,Infinity,-Infinity]`},
		{"float16", tensor.Float16, `[0.1, 1, -65504]`,
			&tensor.Tensor{DType: tensor.Float16, Shape: []int64{3}, Data: f16s(0.1, 1, -65504)}, `[0.099975586,1,-65504]`},
		{"bfloat16", tensor.BFloat16, `[1.5, -2]`,
			&tensor.Tensor{DType: tensor.BFloat16, Shape: []int64{2}, Data: bf16s(1.5, -2)}, `[1.5,-2]`},
		{"double", tensor.Double, `[0.1, 1e300]`,
			&tensor.Tensor{DType: tensor.Double, Shape: []int64{2}, Data: f64s(0.1, 1e300)}, `[0.1,1e+300]`},
		{"int64 beyond float64 precision", tensor.Int64, `[1, -2, 9007199254740993]`,
			&tensor.Tensor{DType: tensor.Int64, Shape: []int64{3}, Data: i64s(1, -2, 9007199254740993)}, `[1,-2,9007199254740993]`},
		{"int64 written as floats", tensor.Int64, `[3.0, 2e2]`,
			&tensor.Tensor{DType: tensor.Int64, Shape: []int64{2}, Data: i64s(3, 200)}, `[3,200]`},
		{"int32", tensor.Int32, `[[-2147483648], [2147483647]]`,
			&tensor.Tensor{DType: tensor.Int32, Shape: []int64{2, 1}, Data: i32s(-2147483648, 2147483647)}, `[[-2147483648],[2147483647]]`},
		{"uint8", tensor.Uint8, `[0, 255]`,
			&tensor.Tensor{DType: tensor.Uint8, Shape: []int64{2}, Data: []byte{0, 255}}, `[0,255]`},
		{"uint64 above int64", tensor.Uint64, `[18446744073709551615]`,
			&tensor.Tensor{DType: tensor.Uint64, Shape: []int64{1}, Data: i64s(-1)}, `[18446744073709551615]`},
		{"bool", tensor.Bool, `[[true], [false]]`,
			&tensor.Tensor{DType: tensor.Bool, Shape: []int64{2, 1}, Data: []byte{1, 0}}, `[[true],[false]]`},
		{"string", tensor.String, `["a", "é\"\n\u00e9", ""]`,
			&tensor.Tensor{DType: tensor.String, Shape: []int64{3}, Strings: []string{"a", "é\"\né", ""}}, `["a","é\"\né",""]`},
		{"float32 scalar", tensor.Float, ` 5 `,
			&tensor.Tensor{DType: tensor.Float, Data: f32s(5)}, `5`},
		{"string scalar", tensor.String, `"hi"`,
			&tensor.Tensor{DType: tensor.String, Strings: []string{"hi"}}, `"hi"`},
		{"empty list", tensor.Float, `[]`,
			&tensor.Tensor{DType: tensor.Float, Shape: []int64{0}}, `[]`},
		{"list of empty lists", tensor.Int64, `[[], []]`,
			&tensor.Tensor{DType: tensor.Int64, Shape: []int64{2, 0}}, `[[],[]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := sigOf(tt.dt)
			sig.Inputs[0].Shape, sig.Outputs[0].Shape = nil, nil
			body := `{"inputs": {"x": ` + tt.value + `}}`
			req, err := Decode(FamilyONNX, jsonHeader, []byte(body), sig)
			if err != nil {
				t.Fatal(err)
			}
			if req.Format != FormatJSON || req.Outputs != nil {
				t.Fatalf("format %v outputs %v", req.Format, req.Outputs)
			}
			equalTensor(t, "x", req.Inputs["x"], tt.want)
			out, ct, err := Encode(req, map[string]*tensor.Tensor{"y": tt.want}, sig)
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"outputs":{"y":` + tt.reply + `}}`; string(out) != want || ct != "application/json" {
				t.Fatalf("response %s (%s)\nwant     %s", out, ct, want)
			}
			if !strings.Contains(tt.reply, "NaN") && !json.Valid(out) {
				t.Fatalf("response is not valid JSON: %s", out)
			}
		})
	}
}

func TestJSONOutputsSelection(t *testing.T) {
	body := `{"outputs": ["q", "q"], "inputs": {"a": [[1, 2]], "b": [7]}}`
	req, err := Decode(FamilyTensorFlow, nil, []byte(body), twoSig)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Outputs) != 1 || req.Outputs[0] != "q" {
		t.Fatalf("outputs %v", req.Outputs)
	}
	outs := map[string]*tensor.Tensor{
		"q": {DType: tensor.Int64, Shape: []int64{1}, Data: i64s(9)},
	}
	out, _, err := Encode(req, outs, twoSig)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"outputs":{"q":[9]}}` {
		t.Fatalf("response %s", out)
	}
	// Without "outputs", every output comes back in signature order.
	req.Outputs = nil
	outs["p"] = &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 2}, Data: f32s(0.25, 0.75)}
	if out, _, err = Encode(req, outs, twoSig); err != nil || string(out) != `{"outputs":{"p":[[0.25,0.75]],"q":[9]}}` {
		t.Fatalf("response %s, %v", out, err)
	}
}

func TestJSONErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"ragged length", `{"inputs": {"a": [[1, 2], [3]]}}`,
			`input "a": at [1]: ragged nested list: 1 elements where the first list at this depth has 2`},
		{"scalar where a list belongs", `{"inputs": {"a": [[1, 2], 3]}}`,
			`input "a": at [1]: ragged nested list: a scalar where a list of 2 was expected`},
		{"list where a scalar belongs", `{"inputs": {"b": [1, [2]]}}`,
			`input "b": at [1]: ragged nested list: a list where a scalar was expected`},
		{"string for a number", `{"inputs": {"a": [["1", 2]]}}`,
			`input "a": at [0][0]: expected a number (float32), found a string`},
		{"fraction for an integer", `{"inputs": {"b": [1, 1.5]}}`,
			`input "b": at [1]: value 1.5 is not an integer (int64)`},
		{"float32 overflow", `{"inputs": {"a": [[1e39, 0]]}}`,
			`input "a": at [0][0]: value 1e39 overflows float32`},
		{"int64 overflow", `{"inputs": {"b": [9223372036854775808]}}`,
			`input "b": at [0]: value 9223372036854775808 does not fit int64`},
		{"null element", `{"inputs": {"b": [null]}}`,
			`input "b": at [0]: expected a number (int64), found null`},
		{"syntax error inside a list", `{"inputs": {"a": [[1, 2}}`,
			`input "a": invalid JSON at byte 24: expected ',' or ']' in list, found '}'`},
		{"bad number", `{"inputs": {"b": [1.]}}`,
			`input "b": invalid JSON at byte 21: bad number`},
		{"unknown input", `{"inputs": {"c": [1]}}`,
			`input "c": unknown input; the model's inputs are [a b]`},
		{"input twice", `{"inputs": {"b": [1], "b": [2]}}`,
			`input "b": given twice`},
		{"unknown field", `{"inputs": {}, "signature": "x"}`,
			`unknown field "signature"; a JSON request has "inputs" and optionally "outputs"`},
		{"inputs not an object", `{"inputs": [[1, 2]]}`,
			`"inputs" must be an object of input name → nested list, found a list`},
		{"outputs not names", `{"inputs": {}, "outputs": [1]}`,
			`"outputs"[0] must be an output name, found a number`},
		{"unknown output", `{"inputs": {}, "outputs": ["p", "zz"]}`,
			`unknown output "zz"; the model's outputs are [p q]`},
		{"trailing data", `{"inputs": {}} {}`,
			`invalid JSON at byte 16: unexpected data after the top-level value`},
		{"unterminated", `{"inputs": {"b": [1`,
			`input "b": invalid JSON at byte 20: expected ',' or ']' in list, found end of input`},
		{"too deep", `{"inputs": {"a": ` + strings.Repeat("[", 100) + `}}`,
			`input "a": invalid JSON at byte 82: nested deeper than 64 levels`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(FamilyONNX, jsonHeader, []byte(tt.body), twoSig)
			wantInputError(t, err, tt.want)
		})
	}
	t.Run("bool input takes only true or false", func(t *testing.T) {
		_, err := Decode(FamilyONNX, nil, []byte(`{"inputs": {"x": [1]}}`), sigOf(tensor.Bool, 1))
		wantInputError(t, err, `input "x": at [0]: expected true or false, found a number`)
	})
	t.Run("uint8 range", func(t *testing.T) {
		_, err := Decode(FamilyONNX, nil, []byte(`{"inputs": {"x": [256]}}`), sigOf(tensor.Uint8, 1))
		wantInputError(t, err, `input "x": at [0]: value 256 does not fit uint8`)
	})
	t.Run("float16 overflow", func(t *testing.T) {
		_, err := Decode(FamilyONNX, nil, []byte(`{"inputs": {"x": [70000]}}`), sigOf(tensor.Float16, 1))
		wantInputError(t, err, `input "x": at [0]: value 70000 overflows float16`)
	})
}
