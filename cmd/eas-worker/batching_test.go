package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/batcher"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/onnxrt"
	"github.com/openeas/openeas/internal/tensor"
)

// TestBatchingBitForBit merges concurrent requests to PaddleOCR's orientation classifier and
// checks that every request's answer has exactly the bytes ONNX Runtime gives for it alone.
func TestBatchingBitForBit(t *testing.T) {
	lib := os.Getenv(envORTLib)
	if lib == "" {
		t.Skip("set OPENEAS_ORT_LIB to the ONNX Runtime library (scripts/fetch-deps.sh makes .cache/libonnxruntime.so) to run this test")
	}
	model, _ := filepath.Abs("../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("model missing (run scripts/fetch-deps.sh): %v", err)
	}
	if err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
	proc, err := onnxrt.Open(model, processor.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	sig := proc.Signature()
	if err := batcher.Check(sig); err != nil {
		t.Fatalf("the classifier should be batchable: %v", err)
	}
	in := sig.Inputs[0].Name

	// A batch closes when it holds 8 rows (the wait never ends it), so each phase is exactly
	// one merged inference: 8 clients with one row each, then 4 clients with two rows each.
	var mu sync.Mutex
	var sizes [][2]int
	b := batcher.New(proc.Predict, batcher.Options{MaxBatchSize: 8, MaxWait: time.Hour,
		OnBatch: func(reqs, rows int) { mu.Lock(); sizes = append(sizes, [2]int{reqs, rows}); mu.Unlock() }})
	for _, phase := range []struct{ clients, rows int }{{8, 1}, {4, 2}} {
		var wg sync.WaitGroup
		for c := range phase.clients {
			wg.Go(func() {
				x := image(phase.rows, c*10+phase.rows)
				got, n, err := b.Predict(context.Background(), map[string]*tensor.Tensor{in: x}, nil)
				if err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				if n != phase.clients {
					t.Errorf("client %d: batch of %d requests reported, want %d", c, n, phase.clients)
				}
				want, err := proc.Predict(context.Background(), map[string]*tensor.Tensor{in: x}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) != len(want) {
					t.Errorf("client %d: %d outputs, want %d", c, len(got), len(want))
				}
				for name, w := range want {
					if g := got[name]; g == nil || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) || string(g.Data) != string(w.Data) {
						t.Errorf("client %d (%d rows) output %s: the batched answer differs from the unbatched one", c, phase.rows, name)
					}
				}
			})
		}
		wg.Wait()
	}
	b.Wait()
	if want := [][2]int{{8, 8}, {4, 8}}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("merged inferences (requests, rows) %v, want %v", sizes, want)
	}
}

// image is a deterministic [rows,3,48,192] input.
func image(rows, seed int) *tensor.Tensor {
	n := rows * 3 * 48 * 192
	data := make([]byte, 4*n)
	for i := range n {
		v := float32(math.Sin(float64(i*(seed+3))*0.001)) * 0.9
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return &tensor.Tensor{DType: tensor.Float, Shape: []int64{int64(rows), 3, 48, 192}, Data: data}
}
