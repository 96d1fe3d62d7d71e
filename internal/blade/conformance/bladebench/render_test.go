package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/blade/report"
)

func TestReplaceSectionKeepsOtherSections(t *testing.T) {
	for _, tc := range []struct{ name, before, want string }{
		{"no file", "", "# Benchmarks\n\n## Blade\nnew\n"},
		{"appended", "# Benchmarks\n\n## Serving\nqps 10\n", "# Benchmarks\n\n## Serving\nqps 10\n\n## Blade\nnew\n"},
		{"middle", "# B\n\n## Serving\nA\n\n## Blade\nold\n### Targets\nx\n\n## Gateway\nG\n", "# B\n\n## Serving\nA\n\n## Blade\nnew\n## Gateway\nG\n"},
		{"last", "# B\n\n## Blade\nold\n", "# B\n\n## Blade\nnew\n"},
		{"first line", "## Blade\nold\n## Other\nO\n", "## Blade\nnew\n## Other\nO\n"},
	} {
		path := filepath.Join(t.TempDir(), "benchmarks.md")
		if tc.before != "" {
			if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := replaceSection(path, "## Blade\nnew\n"); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestTargetsReportGaps(t *testing.T) {
	tm := func(ms float64) *report.Timing { return &report.Timing{Runs: 50, MedianMS: ms, MinMS: ms, MaxMS: ms} }
	rows := []*row{
		{Model: "BERT-base encoder (seq 128)", Level: "o1", Threads: 1, Base: tm(100), Opt: tm(80), Speedup: 1.25},
		{Model: "BERT-base encoder (seq 128)", Level: "o2", Threads: 1, Base: tm(100), Opt: tm(60), Speedup: 1.6, BladeWall: 4 * time.Minute},
		{Model: "ResNet-50", Level: "o2", Threads: 1, Base: tm(50), Opt: tm(25), Speedup: 2.0},
		{Model: "ResNet-50", Level: "o1", Threads: 1, Base: tm(50), Opt: tm(55), Speedup: 0.91},
		{Model: "Fashion-MNIST CNN", Level: "o2", Threads: 1, Speedup: 1.5, BaseAcc: 0.90, OptAcc: 0.897},
	}
	got := strings.Join(targets(rows), "\n")
	for _, want := range []string{
		"o2 on the encoder ≥ 2.00×: **missed** — 1 thread(s) 1.60× (gap 0.40×)",
		"o2 on ResNet-50 ≥ 1.80×: **met**",
		"o1 on the encoder ≥ 1.15×: **met**",
		"o1 ≥ 1.00× on every model: **missed** — ResNet-50 at 1 thread(s) 0.91×",
		"within 0.5 points of fp32: **met** — 1 thread(s) -0.30 pts",
		"encoder at o2 ≤ 3 min: **missed** — 4m0s with --threads 1,2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
	md := render(rows, []string{"X: missing"}, 50, 20, "scripts/bench-blade.sh", time.Minute)
	if !strings.HasPrefix(md, "## Blade\n") || !strings.Contains(md, "| ResNet-50 | 1 | o2 | 50.00 (50.00–50.00) | 25.00 (25.00–25.00) | 2.00× |") || !strings.Contains(md, "Not measured: X: missing") {
		t.Errorf("rendered section:\n%s", md)
	}
}
