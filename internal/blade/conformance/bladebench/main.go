// Command bladebench measures what blade buys on the benchmark models and writes the result as
// the "## Blade" section of docs/benchmarks.md. scripts/bench-blade.sh builds blade, exports
// the models and runs it; see docs/blade.md ("Benchmarks").
//
// For every model and level L it runs `blade optimize --level L --threads 1,2` once (a
// subprocess, timed); then, at each thread count T, it loads the original model with ONNX
// Runtime's default session options at T intra-op threads (the baseline) and each shipped
// model with its runtime.json (intra-op threads set to T), and times them in the same process,
// interleaved run by run, batch 1, after warm-up. Fashion-MNIST is also scored on all 10,000
// test images.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"encoding/binary"
	"math"

	"github.com/openeas/openeas/internal/blade"
	"github.com/openeas/openeas/internal/blade/conformance/fmnist"
	"github.com/openeas/openeas/internal/blade/report"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// model is one benchmark subject.
type model struct {
	name  string
	path  string
	args  []string // blade flags for every level (shapes, ranges, test data)
	o2    []string // extra blade flags at o2 (calibration data)
	feed  func() map[string]*tensor.Tensor
	fmnst bool
	howTo string // how to get the file when it is missing
}

// row is one measured (model, threads, level); exported for the -rows file.
type row struct {
	Model, Level     string
	Threads          int
	Base, Opt        *report.Timing
	Speedup          float64
	Accuracy, Chosen string
	BladeWall        time.Duration
	BaseAcc, OptAcc  float64 // Fashion-MNIST top-1 on the test set (0 when not scored)
	Err              string
	BladeSpeedup     string // blade's own report: overall speedup vs ORT defaults
}

func main() {
	var (
		bladeBin  = flag.String("blade", "bin/blade", "blade binary")
		cache     = flag.String("cache", "", "model cache (default ${OPENEAS_CACHE:-$HOME/.cache/openeas}/models)")
		ocrDir    = flag.String("ocr", ".cache/models/ocr-1.4.2", "PaddleOCR models (scripts/fetch-deps.sh)")
		fmDir     = flag.String("fmnist", "testdata/fashion-mnist", "committed Fashion-MNIST model and data")
		fmData    = flag.String("fmnist-data", fmnist.DefaultDir, "Fashion-MNIST idx files (dataset-fashion-mnist)")
		runs      = flag.Int("runs", 50, "timed runs per model after warm-up (and blade --runs)")
		threadsF  = flag.String("threads", "1,2", "intra-op thread counts")
		levelsF   = flag.String("levels", "o1,o2", "blade levels")
		only      = flag.String("only", "", "comma-separated model names to run (default all)")
		doc       = flag.String("doc", "docs/benchmarks.md", "markdown file whose \"## Blade\" section is replaced (empty: print only)")
		work      = flag.String("work", "", "work directory for blade outputs (default a temporary one, removed)")
		command   = flag.String("command", "scripts/bench-blade.sh", "the command line recorded in the document")
		bladeWait = flag.Duration("blade-timeout", 30*time.Minute, "limit for one blade run")
		bladeRuns = flag.Int("blade-runs", 20, "blade --runs: timed runs per candidate inside blade's search")
		rowsFile  = flag.String("rows", "", "JSON file of earlier rows: rows of models not run now are kept from it, and all rows are saved back")
		reuseF    = flag.Bool("reuse", false, "re-time blade results already in -work instead of running blade again (blade wall times from -rows)")
	)
	flag.Parse()
	if err := run(*bladeBin, *cache, *ocrDir, *fmDir, *fmData, *runs, *bladeRuns, *threadsF, *levelsF, *only, *doc, *work, *command, *rowsFile, *reuseF, *bladeWait); err != nil {
		fmt.Fprintln(os.Stderr, "bladebench:", err)
		os.Exit(1)
	}
}

func run(bladeBin, cache, ocrDir, fmDir, fmData string, runs, bladeRuns int, threadsF, levelsF, only, doc, work, command, rowsFile string, reuseOld bool, bladeWait time.Duration) error {
	lib := os.Getenv("OPENEAS_ORT_LIB")
	if lib == "" {
		return errors.New("set OPENEAS_ORT_LIB to libonnxruntime.so (scripts/bench-blade.sh does)")
	}
	if err := ort.Init(lib); err != nil {
		return err
	}
	if cache == "" {
		base := os.Getenv("OPENEAS_CACHE")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache", "openeas")
		}
		cache = filepath.Join(base, "models")
	}
	var threads []int
	for _, s := range strings.Split(threadsF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-threads %q: expected counts like 1,2", threadsF)
		}
		threads = append(threads, n)
	}
	levels := strings.Split(levelsF, ",")
	if work == "" {
		tmp, err := os.MkdirTemp("", "bladebench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	var reuse map[string]time.Duration
	if reuseOld {
		reuse = map[string]time.Duration{}
		var old []*row
		if b, err := os.ReadFile(rowsFile); err == nil && json.Unmarshal(b, &old) == nil {
			for _, r := range old {
				reuse[r.Model+"/"+r.Level] = r.BladeWall
			}
		}
	}
	var fmSet *fmnist.Set
	models := benchModels(cache, ocrDir, fmDir)
	var rows []*row
	var missing []string
	start := time.Now()
	for _, m := range models {
		if only != "" && !slices.Contains(strings.Split(only, ","), m.name) {
			continue
		}
		if _, err := os.Stat(m.path); err != nil {
			missing = append(missing, fmt.Sprintf("%s: %s not found (%s)", m.name, m.path, m.howTo))
			continue
		}
		if m.fmnst && fmSet == nil {
			s, err := fmnist.LoadTest(fmData)
			if err != nil {
				missing = append(missing, "Fashion-MNIST accuracy: "+err.Error())
			}
			fmSet = s
		}
		var ships []shipped
		for _, lvl := range levels {
			ships = append(ships, runBlade(m, lvl, threads, bladeRuns, bladeBin, work, bladeWait, reuse))
		}
		rows = append(rows, benchModel(m, threads, ships, runs, fmSet)...)
	}
	if rowsFile != "" {
		var err error
		if rows, err = mergeRows(rowsFile, rows); err != nil {
			return err
		}
	}
	md := render(rows, missing, runs, bladeRuns, command, time.Since(start))
	fmt.Print(md)
	if doc == "" {
		return nil
	}
	return replaceSection(doc, md)
}

func benchModels(cache, ocrDir, fmDir string) []model {
	rng := rand.New(rand.NewPCG(7, 7))
	floatFeed := func(name string, shape []int64, lo, hi float32) func() map[string]*tensor.Tensor {
		n := tensor.NumElements(shape)
		t := &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: make([]byte, 4*n)}
		for i := range int(n) {
			binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(lo+(hi-lo)*rng.Float32()))
		}
		return func() map[string]*tensor.Tensor { return map[string]*tensor.Tensor{name: t} }
	}
	ids := &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1, 128}, Data: make([]byte, 8*128)}
	mask := &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1, 128}, Data: make([]byte, 8*128)}
	for i := range 128 {
		binary.LittleEndian.PutUint64(ids.Data[8*i:], uint64(rng.IntN(30522)))
		binary.LittleEndian.PutUint64(mask.Data[8*i:], 1)
	}
	export := "scripts/export-models.py (apt-get install python3-torch python3-torchvision python3-onnx)"
	return []model{
		{name: "ResNet-50", path: filepath.Join(cache, "resnet50.onnx"), howTo: export,
			args: []string{"--input-shapes", "1*3*224*224", "--input-ranges", "[-2.0,2.0]"},
			o2:   []string{"--calibration-dataset", filepath.Join(cache, "resnet50.calib.npy")},
			feed: floatFeed("input", []int64{1, 3, 224, 224}, -2, 2)},
		{name: "BERT-base encoder (seq 128)", path: filepath.Join(cache, "encoder.onnx"), howTo: export,
			args: []string{"--input-shapes", "1*128;1*128", "--input-ranges", "[0,30521];[1,1]"},
			feed: func() map[string]*tensor.Tensor {
				return map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": mask}
			}},
		{name: "PP-OCRv4 rec", path: filepath.Join(ocrDir, "ch_PP-OCRv4_rec_infer.onnx"), howTo: "scripts/fetch-deps.sh",
			args: []string{"--input-shapes", "1*3*48*320", "--input-ranges", "[-1.0,1.0]"},
			o2:   []string{"--calibration-dataset", filepath.Join(cache, "ppocr-rec.calib.npy")},
			feed: floatFeed("x", []int64{1, 3, 48, 320}, -1, 1)},
		{name: "PP-OCR mobile cls", path: filepath.Join(ocrDir, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), howTo: "scripts/fetch-deps.sh",
			args: []string{"--input-shapes", "1*3*48*192", "--input-ranges", "[-1.0,1.0]"},
			o2:   []string{"--calibration-dataset", filepath.Join(cache, "ppocr-cls.calib.npy")},
			feed: floatFeed("x", []int64{1, 3, 48, 192}, -1, 1)},
		{name: "Fashion-MNIST CNN", path: filepath.Join(fmDir, "model.onnx"), howTo: "testdata/fashion-mnist/train.py", fmnst: true,
			args: []string{"--test-data", filepath.Join(fmDir, "test_data.npy")},
			o2:   []string{"--calibration-dataset", filepath.Join(fmDir, "calibration.npy")},
			feed: floatFeed("image", []int64{1, 1, 28, 28}, 0, 1)},
	}
}

var slug = regexp.MustCompile(`[^a-z0-9]+`)

// shipped is what one blade run produced.
type shipped struct {
	level, path, chosen, accuracy, bladeSpeedup, err string
	rt                                               processor.Runtime
	wall                                             time.Duration
}

// runBlade runs blade once for m at level, searching over every thread count.
// With reuse (blade wall times by "model/level" from an earlier -rows file), an existing
// result in the work directory is used instead of running blade again.
func runBlade(m model, level string, threads []int, bladeRuns int, bladeBin, work string, bladeWait time.Duration, reuse map[string]time.Duration) shipped {
	sh := shipped{level: level}
	out := filepath.Join(work, fmt.Sprintf("%s-%s", strings.Trim(slug.ReplaceAllString(strings.ToLower(m.name), "-"), "-"), level))
	ts := make([]string, len(threads))
	for i, t := range threads {
		ts[i] = strconv.Itoa(t)
	}
	args := []string{"optimize", "--model", m.path, "--level", level, "--threads", strings.Join(ts, ","), "--runs", strconv.Itoa(bladeRuns), "--output", out}
	args = append(args, m.args...)
	if level == blade.LevelO2 {
		for i := 0; i+1 < len(m.o2); i += 2 {
			if _, err := os.Stat(m.o2[i+1]); err == nil {
				args = append(args, m.o2[i], m.o2[i+1])
			}
		}
	}
	if reuse != nil {
		if rep, rt, err := readResult(out); err == nil {
			fmt.Fprintf(os.Stderr, "bladebench: %s, %s: reusing %s\n", m.name, level, out)
			sh.path, sh.rt, sh.chosen, sh.bladeSpeedup = filepath.Join(out, "model.onnx"), rt, rep.Chosen, rep.Overall.Speedup
			sh.accuracy = chosenAccuracy(rep)
			sh.wall = reuse[m.name+"/"+level]
			return sh
		}
	}
	fmt.Fprintf(os.Stderr, "bladebench: %s, %s: blade %s\n", m.name, level, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), bladeWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bladeBin, args...)
	logPath := out + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		sh.err = err.Error()
		return sh
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	err = cmd.Run()
	sh.wall = time.Since(t0)
	logf.Close()
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		lines := strings.Split(strings.TrimSpace(string(tail)), "\n")
		sh.err = fmt.Sprintf("blade failed (%v): %s", err, lines[len(lines)-1])
		return sh
	}
	rep, rt, err := readResult(out)
	if err != nil {
		sh.err = err.Error()
		return sh
	}
	sh.path, sh.rt, sh.chosen, sh.bladeSpeedup = filepath.Join(out, "model.onnx"), rt, rep.Chosen, rep.Overall.Speedup
	sh.accuracy = chosenAccuracy(rep)
	return sh
}

func chosenAccuracy(rep *report.Report) string {
	if rep.Chosen == "baseline" {
		return "identical (original model)"
	}
	for _, c := range rep.Candidates {
		if c.Verdict == "chosen" {
			return report.AccuracySummary(c.Accuracy)
		}
	}
	return ""
}

// benchModel times, at each thread count, the original model with ORT's defaults and every
// shipped model with its runtime.json (thread count set to the row's), interleaved.
func benchModel(m model, threads []int, ships []shipped, runs int, fm *fmnist.Set) []*row {
	ctx := context.Background()
	var rows []*row
	for _, t := range threads {
		var trows []*row
		for _, sh := range ships {
			r := &row{Model: m.name, Level: sh.level, Threads: t, Accuracy: sh.accuracy, Chosen: sh.chosen, BladeWall: sh.wall, BladeSpeedup: sh.bladeSpeedup, Err: sh.err}
			rows = append(rows, r)
			trows = append(trows, r)
		}
		base, err := blade.ORT{}.NewSession(m.path, blade.SessionConfig{Runtime: processor.Runtime{IntraOpThreads: t}})
		if err != nil {
			for _, r := range trows {
				r.Err = "baseline: " + err.Error()
			}
			continue
		}
		sessions := []blade.Session{base}
		var live []*row
		for k, sh := range ships {
			if sh.err != "" {
				continue
			}
			// T is the cores the row allows: blade's choice stands when it fits (it may pick fewer
			// threads than T); a runtime.json that leaves the count open gets T.
			rt := sh.rt
			if rt.IntraOpThreads == 0 || rt.IntraOpThreads > t {
				rt.IntraOpThreads = t
			}
			if rt.InterOpThreads > t {
				rt.InterOpThreads = t
			}
			sess, err := blade.ORT{}.NewSession(sh.path, blade.SessionConfig{Runtime: rt})
			if err != nil {
				trows[k].Err = "load shipped model: " + err.Error()
				continue
			}
			sessions = append(sessions, sess)
			live = append(live, trows[k])
		}
		fmt.Fprintf(os.Stderr, "bladebench: %s, %d thread(s): timing %d sessions × %d runs (interleaved)\n", m.name, t, len(sessions), runs)
		timings, err := interleaved(ctx, sessions, m.feed(), runs)
		var baseAcc float64
		if err == nil && m.fmnst && fm != nil {
			if baseAcc, err = fmnist.Accuracy(ctx, base, fm, "image", "logits", 0); err != nil {
				baseAcc = -1
			}
		}
		for k, r := range live {
			if err != nil {
				r.Err = "timing: " + err.Error()
				continue
			}
			r.Base, r.Opt = timings[0], timings[k+1]
			r.Speedup = timings[0].MedianMS / timings[k+1].MedianMS
			if m.fmnst && fm != nil {
				r.BaseAcc = baseAcc
				if r.OptAcc, err = fmnist.Accuracy(ctx, sessions[k+1], fm, "image", "logits", 0); err != nil {
					r.OptAcc = -1
				}
			}
		}
		for _, s := range sessions {
			s.Close()
		}
	}
	return rows
}

func readResult(dir string) (*report.Report, processor.Runtime, error) {
	var rep report.Report
	var rt processor.Runtime
	b, err := os.ReadFile(filepath.Join(dir, blade.ReportFile))
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err != nil {
		return nil, rt, fmt.Errorf("read report: %w", err)
	}
	b, err = os.ReadFile(filepath.Join(dir, blade.RuntimeFile))
	if err == nil {
		err = json.Unmarshal(b, &rt)
	}
	if err != nil {
		return nil, rt, fmt.Errorf("read runtime.json: %w", err)
	}
	return &rep, rt, nil
}

// interleaved warms every session up, then runs them in turn, runs times, so a busy machine
// slows all of them alike.
func interleaved(ctx context.Context, ss []blade.Session, feed map[string]*tensor.Tensor, runs int) ([]*report.Timing, error) {
	outs := make([][]string, len(ss))
	for i, s := range ss {
		for _, o := range s.Outputs() {
			outs[i] = append(outs[i], o.Name)
		}
		for range 10 {
			if _, err := s.Run(ctx, feed, outs[i]); err != nil {
				return nil, err
			}
		}
	}
	d := make([][]time.Duration, len(ss))
	for range runs {
		for i, s := range ss {
			t0 := time.Now()
			if _, err := s.Run(ctx, feed, outs[i]); err != nil {
				return nil, err
			}
			d[i] = append(d[i], time.Since(t0))
		}
	}
	res := make([]*report.Timing, len(ss))
	for i := range d {
		slices.Sort(d[i])
		ms := func(x time.Duration) float64 { return float64(x) / 1e6 }
		med := (d[i][(runs-1)/2] + d[i][runs/2]) / 2
		res[i] = &report.Timing{Runs: runs, MedianMS: ms(med), MinMS: ms(d[i][0]), MaxMS: ms(d[i][runs-1])}
	}
	return res, nil
}

func ortVersion() string { return ort.Version() }

// mergeRows keeps the rows of path whose model was not measured now (in their old order,
// before the new ones), and saves the result back to path.
func mergeRows(path string, now []*row) ([]*row, error) {
	var old []*row
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &old); err != nil {
			return nil, fmt.Errorf("-rows %s: %w", path, err)
		}
	}
	measured := map[string]bool{}
	for _, r := range now {
		measured[r.Model] = true
	}
	var out []*row
	for _, r := range old {
		if !measured[r.Model] {
			out = append(out, r)
		}
	}
	out = append(out, now...)
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return out, os.WriteFile(path, append(b, '\n'), 0o644)
}
