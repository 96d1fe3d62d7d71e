// Command inproc is the overhead benchmark's baseline: it runs a model in this process
// with ONNX Runtime (through internal/processor/onnxrt, the worker's own processor) in a
// closed loop of C goroutines, and prints a loadgen.Result as JSON, the same shape as
// `eascmd bench -o json`, so the two compare directly.
//
//	go run ./bench/inproc --model bench/testdata/mlp.onnx --ort-lib .cache/libonnxruntime.so -c 1 -d 5s
//	go run ./bench/inproc --model bench/testdata/mlp.onnx --write-request req.pb
//
// The input is a float32 [1, N] row named after the model's first input (the MLP's
// "x", N=64); --write-request writes the same input as an EAS TensorFlow protobuf
// request, the body the served runs send.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/loadgen"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/onnxrt"
	"github.com/openeas/openeas/internal/tensor"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "inproc:", err)
		os.Exit(1)
	}
}

func run() error {
	model := flag.String("model", "bench/testdata/mlp.onnx", "ONNX model `file`")
	lib := flag.String("ort-lib", os.Getenv("OPENEAS_ORT_LIB"), "ONNX Runtime shared `library` (env OPENEAS_ORT_LIB)")
	conc := flag.Int("c", 1, "concurrent callers")
	n := flag.Int("n", 0, "total `requests`")
	dur := flag.Duration("d", 0, "run for this `duration` instead of -n")
	width := flag.Int("width", 64, "input row `width` (the MLP's 64)")
	input := flag.String("input", "x", "input `name`")
	writeReq := flag.String("write-request", "", "write the input as an EAS TensorFlow protobuf request to `file` and exit")
	flag.Parse()

	row := make([]float32, *width)
	for i := range row {
		row[i] = float32(math.Sin(float64(i))) * 0.5
	}
	if *writeReq != "" {
		b, err := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{*input: {
			Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1, int64(*width)}}, FloatVal: row}}})
		if err != nil {
			return err
		}
		return os.WriteFile(*writeReq, b, 0o644)
	}
	if (*n > 0) == (*dur > 0) {
		return errors.New("give either -n or -d")
	}
	if err := ort.Init(*lib); err != nil {
		return fmt.Errorf("load ONNX Runtime (--ort-lib): %w", err)
	}
	proc, err := onnxrt.Open(*model, processor.Runtime{})
	if err != nil {
		return err
	}
	data := make([]byte, 4*len(row))
	for i, v := range row {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	in := map[string]*tensor.Tensor{*input: {DType: tensor.Float, Shape: []int64{1, int64(*width)}, Data: data}}
	ctx := context.Background()
	// Warm up: the first runs allocate ORT's arenas.
	for range 100 {
		if _, err := proc.Predict(ctx, in, nil); err != nil {
			return err
		}
	}

	var tickets atomic.Int64
	tickets.Store(int64(*n))
	start := time.Now()
	deadline := start.Add(*dur)
	lat := make([][]time.Duration, *conc)
	errc := make(chan error, *conc)
	var wg sync.WaitGroup
	for w := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if *n > 0 && tickets.Add(-1) < 0 || *dur > 0 && !time.Now().Before(deadline) {
					return
				}
				t0 := time.Now()
				if _, err := proc.Predict(ctx, in, nil); err != nil {
					errc <- err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	res := &loadgen.Result{Concurrency: *conc, Elapsed: elapsed, Codes: map[int]int{}}
	for _, l := range lat {
		res.Latencies = append(res.Latencies, l...)
	}
	res.Requests = len(res.Latencies)
	res.Codes[200] = res.Requests
	res.Latency = loadgen.Summarize(res.Latencies)
	res.Throughput = float64(res.Requests) / elapsed.Seconds()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Service string `json:"service"`
		*loadgen.Result
	}{"in-process", res})
}
