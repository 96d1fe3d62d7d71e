// Command mkreq writes one EAS TensorFlow protobuf predict request with a float32 input of
// the given name and shape, filled with deterministic values in [-1, 1), for eascmd bench.
//
//	go run ./bench/mkreq --input x --shape 1,3,224,224 --out req.pb
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
)

func main() {
	input := flag.String("input", "x", "input name")
	shape := flag.String("shape", "1,3,224,224", "comma-separated dimensions")
	out := flag.String("out", "req.pb", "file to write")
	flag.Parse()
	if err := run(*input, *shape, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkreq:", err)
		os.Exit(1)
	}
}

func run(input, shape, out string) error {
	var dims []int64
	n := int64(1)
	for _, f := range strings.Split(shape, ",") {
		d, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || d <= 0 {
			return fmt.Errorf("--shape: %q is not a positive dimension", f)
		}
		dims = append(dims, d)
		n *= d
	}
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i) * 0.01))
	}
	b, err := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{input: {
		Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: dims}, FloatVal: vals}}})
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
