package batcher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// forever is a MaxWait that never fires within a test: batches then close only when full,
// which makes the grouping deterministic.
const forever = time.Hour

func f32(shape []int64, vals ...float32) *tensor.Tensor {
	t := &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: make([]byte, 4*len(vals))}
	for i, v := range vals {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
	}
	return t
}

func vals(t *tensor.Tensor) []float32 {
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out
}

// rowModel is a model whose rows are independent: y = 3x+1 elementwise, s = the sum of each
// row (shape [n]), and the strings of input "w" upper-cased. It records every run's inputs.
type rowModel struct {
	mu   sync.Mutex
	runs []map[string]*tensor.Tensor
}

func (m *rowModel) run(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
	m.mu.Lock()
	m.runs = append(m.runs, in)
	m.mu.Unlock()
	x := in["x"]
	v := vals(x)
	y := make([]float32, len(v))
	for i := range v {
		y[i] = 3*v[i] + 1
	}
	n := x.Shape[0]
	perRow := int(tensor.NumElements(x.Shape[1:]))
	s := make([]float32, n)
	for r := range s {
		for _, e := range v[r*perRow : (r+1)*perRow] {
			s[r] += e
		}
	}
	outs := map[string]*tensor.Tensor{"y": f32(x.Shape, y...), "s": f32([]int64{n}, s...)}
	if w := in["w"]; w != nil {
		up := make([]string, len(w.Strings))
		for i, str := range w.Strings {
			up[i] = strings.ToUpper(str)
		}
		outs["u"] = &tensor.Tensor{DType: tensor.String, Shape: w.Shape, Strings: up}
	}
	if out != nil {
		for k := range outs {
			if !slices.Contains(out, k) {
				delete(outs, k)
			}
		}
	}
	return outs, nil
}

func (m *rowModel) runRows() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rows []int64
	for _, r := range m.runs {
		rows = append(rows, r["x"].Shape[0])
	}
	slices.Sort(rows)
	return rows
}

type req struct {
	in  map[string]*tensor.Tensor
	out []string
}

// predictAll sends every request at once and returns the answers in order, with the number
// of requests each one's inference carried.
func predictAll(t *testing.T, b *Batcher, reqs []req) ([]map[string]*tensor.Tensor, []int) {
	t.Helper()
	res := make([]map[string]*tensor.Tensor, len(reqs))
	n := make([]int, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { res[i], n[i], errs[i] = b.Predict(context.Background(), r.in, r.out) })
	}
	wg.Wait()
	b.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return res, n
}

// sameAsAlone checks that every answer equals the model's answer to that request alone.
func sameAsAlone(t *testing.T, reqs []req, got []map[string]*tensor.Tensor) {
	t.Helper()
	alone := &rowModel{}
	for i, r := range reqs {
		want, _ := alone.run(context.Background(), r.in, r.out)
		if len(got[i]) != len(want) {
			t.Fatalf("request %d: outputs %v, want %v", i, keys(got[i]), keys(want))
		}
		for name, w := range want {
			g := got[i][name]
			if g == nil || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) ||
				string(g.Data) != string(w.Data) || !slices.Equal(g.Strings, w.Strings) {
				t.Errorf("request %d output %s = %+v, want %+v (as answered alone)", i, name, g, w)
			}
		}
	}
}

func keys(m map[string]*tensor.Tensor) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func TestMergedResultsIdenticalToAlone(t *testing.T) {
	m := &rowModel{}
	// 1 + 2 + 3 + 2 rows = 8 = MaxBatchSize: one inference, closed because it is full.
	b := New(m.run, Options{MaxBatchSize: 8, MaxWait: forever})
	reqs := []req{
		{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 2}, 1, 2)}},
		{in: map[string]*tensor.Tensor{"x": f32([]int64{2, 2}, 3, 4, 5, 6)}},
		{in: map[string]*tensor.Tensor{"x": f32([]int64{3, 2}, -1, -2, 0.5, 0.25, 1e6, -7)}},
		{in: map[string]*tensor.Tensor{"x": f32([]int64{2, 2}, 9, 9, 8, 8)}},
	}
	got, n := predictAll(t, b, reqs)
	sameAsAlone(t, reqs, got)
	if rows := m.runRows(); !slices.Equal(rows, []int64{8}) {
		t.Errorf("inferences with rows %v, want one of 8", rows)
	}
	if !slices.Equal(n, []int{4, 4, 4, 4}) {
		t.Errorf("batch sizes reported %v, want 4 for every request", n)
	}
}

func TestStringsAndOutputFilter(t *testing.T) {
	m := &rowModel{}
	b := New(m.run, Options{MaxBatchSize: 3, MaxWait: forever})
	in := func(x float32, a, c string) map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{
			"x": f32([]int64{1, 1}, x),
			"w": {DType: tensor.String, Shape: []int64{1, 2}, Strings: []string{a, c}},
		}
	}
	reqs := []req{
		{in: in(1, "a", "b"), out: []string{"u", "s"}},
		{in: in(2, "cd", ""), out: []string{"u", "s"}},
		{in: in(3, "é", "x"), out: []string{"u", "s"}},
	}
	got, _ := predictAll(t, b, reqs)
	sameAsAlone(t, reqs, got)
	if rows := m.runRows(); !slices.Equal(rows, []int64{3}) {
		t.Errorf("inferences with rows %v, want one of 3", rows)
	}
}

func TestOnlyAlikeRequestsMerge(t *testing.T) {
	m := &rowModel{}
	var mu sync.Mutex
	var batches [][2]int
	b := New(m.run, Options{MaxBatchSize: 2, MaxWait: forever, OnBatch: func(reqs, rows int) {
		mu.Lock()
		batches = append(batches, [2]int{reqs, rows})
		mu.Unlock()
	}})
	reqs := []req{
		{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 2}, 1, 2)}},
		{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 3}, 1, 2, 3)}}, // other non-batch dim
		{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 2}, 5, 6)}, out: []string{"s"}},
		{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 2}, 3, 4)}},
		{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 3}, 4, 5, 6)}},
		{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 2}, 7, 8)}, out: []string{"s"}},
	}
	got, n := predictAll(t, b, reqs)
	sameAsAlone(t, reqs, got)
	if !slices.Equal(n, []int{2, 2, 2, 2, 2, 2}) {
		t.Errorf("batch sizes reported %v, want 2 for every request", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.runs) != 3 {
		t.Fatalf("%d inferences, want 3 (one per kind of request)", len(m.runs))
	}
	for _, r := range m.runs {
		if r["x"].Shape[0] != 2 {
			t.Errorf("inference of shape %v, want 2 rows of one kind", r["x"].Shape)
		}
	}
	if len(batches) != 3 || batches[0] != [2]int{2, 2} {
		t.Errorf("OnBatch saw %v, want three batches of 2 requests, 2 rows", batches)
	}
}

func TestMaxBatchSizeRespected(t *testing.T) {
	m := &rowModel{}
	// A short wait so that the leftover requests run; the sizes do not depend on it.
	b := New(m.run, Options{MaxBatchSize: 3, MaxWait: 5 * time.Millisecond})
	var reqs []req
	for i := range 10 {
		reqs = append(reqs, req{in: map[string]*tensor.Tensor{"x": f32([]int64{1, 1}, float32(i))}})
	}
	// Bigger than a batch: runs alone.
	reqs = append(reqs, req{in: map[string]*tensor.Tensor{"x": f32([]int64{5, 1}, 1, 2, 3, 4, 5)}})
	got, _ := predictAll(t, b, reqs)
	sameAsAlone(t, reqs, got)
	rows := m.runRows()
	var total int64
	for _, r := range rows {
		total += r
		if r > 3 && r != 5 {
			t.Errorf("an inference of %d rows; max_batch_size is 3", r)
		}
	}
	if total != 15 || !slices.Contains(rows, 5) {
		t.Errorf("inferences of %v rows, want 15 rows in all with the 5-row request alone", rows)
	}
}

func TestCancelledRequests(t *testing.T) {
	entered := make(chan context.Context, 1)
	run := func(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
		entered <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	}
	b := New(run, Options{MaxBatchSize: 2, MaxWait: forever})
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for _, ctx := range []context.Context{ctx1, ctx2} {
		go func() {
			_, _, err := b.Predict(ctx, map[string]*tensor.Tensor{"x": f32([]int64{1, 1}, 1)}, nil)
			errs <- err
		}()
	}
	runCtx := <-entered
	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", err)
	}
	if runCtx.Err() != nil {
		t.Fatal("the merged inference was cancelled while a request still waits for it")
	}
	cancel2()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", err)
	}
	<-runCtx.Done() // cancelled once nobody waits: the test would hang otherwise
	b.Wait()

	// A request that has gone before its batch runs is left out of it.
	m := &rowModel{}
	b = New(m.run, Options{MaxBatchSize: 2, MaxWait: forever})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := b.Predict(gone, map[string]*tensor.Tensor{"x": f32([]int64{1, 1}, 1)}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("request with a cancelled context: %v", err)
	}
	out, n, err := b.Predict(context.Background(), map[string]*tensor.Tensor{"x": f32([]int64{1, 1}, 2)}, nil)
	b.Wait()
	if err != nil || !slices.Equal(vals(out["y"]), []float32{7}) || n != 1 {
		t.Fatalf("live request: %v, batch size %d, %v", out, n, err)
	}
	if rows := m.runRows(); !slices.Equal(rows, []int64{1}) {
		t.Errorf("inferences of %v rows, want the live request alone", rows)
	}
}

func TestBadOutputsAndErrors(t *testing.T) {
	scalar := func(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
		return map[string]*tensor.Tensor{"n": f32(nil, 1)}, nil
	}
	failing := func(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
		return nil, errors.New("runtime exploded")
	}
	for _, c := range []struct {
		name string
		run  RunFunc
		want string
	}{
		{"scalar output", scalar, `output "n" has shape [], not one row per batch row (2 rows)`},
		{"run fails", failing, "runtime exploded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := New(c.run, Options{MaxBatchSize: 2, MaxWait: forever})
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					_, _, err := b.Predict(context.Background(), map[string]*tensor.Tensor{"x": f32([]int64{1, 1}, 1)}, nil)
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Errorf("error %v, want %q", err, c.want)
					}
				})
			}
			wg.Wait()
			b.Wait()
		})
	}

	b := New((&rowModel{}).run, Options{MaxBatchSize: 2, MaxWait: forever})
	_, _, err := b.Predict(context.Background(), map[string]*tensor.Tensor{"x": f32([]int64{1, 1}, 1), "z": f32([]int64{2, 1}, 1, 2)}, nil)
	if !processor.IsInputError(err) || !strings.Contains(err.Error(), "batch dimension 2 differs") {
		t.Errorf("inputs with different batch sizes: %v, want an InputError", err)
	}
}

func TestCheck(t *testing.T) {
	in := func(shape ...int64) tensor.Info { return tensor.Info{Name: "x", DType: tensor.Float, Shape: shape} }
	out := func(shape ...int64) tensor.Info { return tensor.Info{Name: "y", DType: tensor.Float, Shape: shape} }
	for _, c := range []struct {
		sig  processor.Signature
		want string // "" = batchable
	}{
		{processor.Signature{Inputs: []tensor.Info{in(-1, 3, -1, -1)}, Outputs: []tensor.Info{out(-1, 2)}}, ""},
		{processor.Signature{Inputs: []tensor.Info{in(1, 3)}, Outputs: []tensor.Info{out(-1)}}, `input "x" has a fixed batch dimension 1`},
		{processor.Signature{Inputs: []tensor.Info{in(-1, 3)}, Outputs: []tensor.Info{out([]int64{}...)}}, `output "y" is a scalar`},
		{processor.Signature{Inputs: []tensor.Info{in(-1, 3)}, Outputs: []tensor.Info{out(4, 2)}}, `output "y" has a fixed batch dimension 4`},
		{processor.Signature{Inputs: []tensor.Info{{Name: "x"}}, Outputs: []tensor.Info{out(-1)}}, `input "x" has an unknown rank`},
		{processor.Signature{}, "no inputs"},
	} {
		t.Run(fmt.Sprint(c.sig), func(t *testing.T) {
			err := Check(c.sig)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("Check = %v, want %q", err, c.want)
			}
		})
	}
}
