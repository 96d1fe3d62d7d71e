package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/blade/report"
)

// render builds the "## Blade" section: machine, date, command, the table and the targets.
func render(rows []*row, missing []string, runs, bladeRuns int, command string, took time.Duration) string {
	var b strings.Builder
	hw := report.HardwareContext("cpu")
	fmt.Fprintf(&b, "## Blade\n\n")
	fmt.Fprintf(&b, "Measured %s on %s (%d cores as seen by the process, %s) with `%s` (%s in all). ",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(hw.CPUModel), runtime.NumCPU(), memTotal(), command, took.Round(time.Second))
	fmt.Fprintf(&b, "The machine is shared with other jobs (load average %s at the end of the run), so absolute latencies and blade's wall time drift with their load; each speedup compares the baseline and the optimized model timed in the same process, interleaved run by run.\n\n", loadAvg())
	fmt.Fprintf(&b, "Baseline: the original model in ONNX Runtime %s with default session options except the intra-op thread count. ", ortVersion())
	fmt.Fprintf(&b, "Optimized: the model blade shipped, loaded with the runtime.json it shipped; the row's thread count is the cores allowed, so blade's own choice stands when it uses fewer (blade may find 1 thread fastest on a busy 2-core machine) and an open or larger count is set to the row's. ")
	fmt.Fprintf(&b, "Blade ran once per model and level, `blade optimize --level L --threads 1,2 --runs %d` (its wall time is in the last column), with synthetic inputs from `--input-shapes`/`--input-ranges` except Fashion-MNIST (its committed test data); o2 gets `--calibration-dataset` where a file exists (Fashion-MNIST: 200 real training images; others: the synthetic sets scripts/export-models.py writes; the encoder gets none, so its o2 is dynamic INT8). ", bladeRuns)
	fmt.Fprintf(&b, "Batch 1, median of %d timed runs after 10 warm-up runs, min–max in brackets. Accuracy: the chosen candidate against the original model on blade's verification samples (relative error, cosine, top-1 agreement); Fashion-MNIST: top-1 accuracy on all 10,000 test images.\n\n", runs)
	fmt.Fprintln(&b, "| model | threads | level | baseline ms | blade ms | speedup | accuracy | blade chose | blade wall time |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | %d | %s | – | – | – | – | %s | %s |\n", r.Model, r.Threads, r.Level, cell(r.Err), r.BladeWall.Round(time.Second))
			continue
		}
		acc := r.Accuracy
		if r.BaseAcc != 0 {
			acc = fmt.Sprintf("%.2f%% (fp32 %.2f%%, %+.2f pts)", 100*r.OptAcc, 100*r.BaseAcc, 100*(r.OptAcc-r.BaseAcc))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %.2f× | %s | %s | %s |\n", r.Model, r.Threads, r.Level, timing(r.Base), timing(r.Opt), r.Speedup, cell(acc), cell(r.Chosen), r.BladeWall.Round(time.Second))
	}
	for _, m := range missing {
		fmt.Fprintf(&b, "\nNot measured: %s\n", m)
	}
	fmt.Fprintf(&b, "\n### Targets\n\n")
	for _, t := range targets(rows) {
		fmt.Fprintf(&b, "- %s\n", t)
	}
	b.WriteString("\n")
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "/"), "\n", " ") }

func timing(t *report.Timing) string {
	if t == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", t.MedianMS, t.MinMS, t.MaxMS)
}

func cpuModel(s string) string {
	if s == "" {
		return "an unknown CPU"
	}
	return s
}

// loadAvg is the 1/5/15-minute load average from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " / ")
	}
	return "unknown"
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(v), &kb)
			return fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return "memory unknown"
}

// targets checks the goals against the rows and says, for each, met or the gap.
func targets(rows []*row) []string {
	find := func(model, level string) []*row {
		var out []*row
		for _, r := range rows {
			if strings.HasPrefix(r.Model, model) && r.Level == level {
				out = append(out, r)
			}
		}
		return out
	}
	speed := func(label, model, level string, goal float64) string {
		rs := find(model, level)
		if len(rs) == 0 {
			return fmt.Sprintf("%s ≥ %.2f×: not measured", label, goal)
		}
		var parts []string
		met := true
		for _, r := range rs {
			if r.Err != "" {
				parts = append(parts, fmt.Sprintf("%d thread(s): failed", r.Threads))
				met = false
				continue
			}
			s := fmt.Sprintf("%d thread(s) %.2f×", r.Threads, r.Speedup)
			if r.Speedup < goal {
				met = false
				s += fmt.Sprintf(" (gap %.2f×)", goal-r.Speedup)
			}
			parts = append(parts, s)
		}
		verdict := "**met**"
		if !met {
			verdict = "**missed**"
		}
		return fmt.Sprintf("%s ≥ %.2f×: %s — %s", label, goal, verdict, strings.Join(parts, ", "))
	}
	out := []string{
		speed("o2 on the encoder", "BERT", "o2", 2.0),
		speed("o2 on ResNet-50", "ResNet", "o2", 1.8),
		speed("o1 on the encoder", "BERT", "o1", 1.15),
	}
	// o1 never below 1.0× anywhere.
	var below []string
	for _, r := range find("", "o1") {
		if r.Err == "" && r.Speedup < 1.0 {
			below = append(below, fmt.Sprintf("%s at %d thread(s) %.2f×", r.Model, r.Threads, r.Speedup))
		}
	}
	if len(below) == 0 {
		out = append(out, "o1 ≥ 1.00× on every model: **met** (as measured here)")
	} else {
		out = append(out, "o1 ≥ 1.00× on every model: **missed** — "+strings.Join(below, ", "))
	}
	fm := find("Fashion", "o2")
	if len(fm) == 0 || fm[0].BaseAcc == 0 {
		out = append(out, "Fashion-MNIST o2 accuracy within 0.5 points of fp32: not measured")
	} else {
		var parts []string
		met := true
		for _, r := range fm {
			d := 100 * (r.OptAcc - r.BaseAcc)
			parts = append(parts, fmt.Sprintf("%d thread(s) %+.2f pts", r.Threads, d))
			met = met && d >= -0.5
		}
		out = append(out, fmt.Sprintf("Fashion-MNIST o2 accuracy within 0.5 points of fp32: %s — %s", map[bool]string{true: "**met**", false: "**missed**"}[met], strings.Join(parts, ", ")))
	}
	enc := find("BERT", "o2")
	if len(enc) > 1 { // one blade run serves every thread count
		enc = enc[:1]
	}
	if len(enc) > 0 {
		var parts []string
		met := true
		for _, r := range enc {
			parts = append(parts, fmt.Sprintf("%s with --threads 1,2", r.BladeWall.Round(time.Second)))
			met = met && r.Err == "" && r.BladeWall <= 3*time.Minute
		}
		out = append(out, fmt.Sprintf("blade on the encoder at o2 ≤ 3 min: %s — %s", map[bool]string{true: "**met**", false: "**missed**"}[met], strings.Join(parts, ", ")))
	}
	return out
}

// replaceSection puts section in place of the file's "## Blade" section (up to the next "## "
// heading), appending it when there is none; the rest of the file is kept byte for byte.
func replaceSection(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc := string(b)
	if doc == "" {
		doc = "# Benchmarks\n\n"
	}
	start := strings.Index(doc, "\n## Blade\n")
	if strings.HasPrefix(doc, "## Blade\n") {
		start = 0
	} else if start >= 0 {
		start++
	}
	if start < 0 {
		if !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		return os.WriteFile(path, []byte(doc+section), 0o644)
	}
	end := len(doc)
	if i := strings.Index(doc[start+len("## Blade\n"):], "\n## "); i >= 0 {
		end = start + len("## Blade\n") + i + 1
	}
	return os.WriteFile(path, []byte(doc[:start]+section+doc[end:]), 0o644)
}
