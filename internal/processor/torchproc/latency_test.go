package torchproc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
	"github.com/openeas/openeas/internal/torch"
)

// TestLatency is scripts/bench-torch.sh's measurement of the processor (make bench), not a
// check: it runs only when OPENEAS_TORCH_BENCH="MODEL THREADS RUNS float|int64 DIM..." is
// set (the arguments of internal/torch/bench/direct.cpp; OPENEAS_TORCH_BENCH_DEVICE=cuda
// runs on the GPU) and prints
// "latency median_ms min_ms max_ms" for Predict, decoding and encoding aside.
func TestLatency(t *testing.T) {
	spec := strings.Fields(os.Getenv("OPENEAS_TORCH_BENCH"))
	if len(spec) < 5 {
		t.Skip("OPENEAS_TORCH_BENCH is not set: run scripts/bench-torch.sh")
	}
	initShim(t)
	threads, _ := strconv.Atoi(spec[1])
	runs, _ := strconv.Atoi(spec[2])
	var shape []int64
	for _, s := range spec[4:] {
		d, _ := strconv.ParseInt(s, 10, 64)
		shape = append(shape, d)
	}
	p, err := Open(spec[0], processor.Runtime{IntraOpThreads: threads}, Options{Device: os.Getenv("OPENEAS_TORCH_BENCH_DEVICE")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	n := tensor.NumElements(shape)
	x := &tensor.Tensor{DType: tensor.Float, Shape: shape}
	rng := rand.New(rand.NewPCG(1, 1))
	if spec[3] == "int64" {
		x.DType, x.Data = tensor.Int64, make([]byte, 8*n)
		for i := range n {
			x.Data[8*i] = byte(rng.IntN(250))
		}
	} else {
		x.Data = f32(shape, ramp(int(n))...).Data
	}
	in := map[string]*tensor.Tensor{p.Signature().Inputs[0].Name: x}
	ms := make([]float64, 0, runs)
	for i := range runs + 3 {
		t0 := time.Now()
		if _, err := p.Predict(context.Background(), in, nil); err != nil {
			t.Fatal(err)
		}
		if i >= 3 {
			ms = append(ms, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	slices.Sort(ms)
	fmt.Printf("latency %.3f %.3f %.3f (%s, %d threads)\n", ms[len(ms)/2], ms[0], ms[len(ms)-1], p.RuntimeVersion(), torch.Threads())
}
