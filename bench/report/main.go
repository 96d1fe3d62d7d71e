// Command report turns the overhead benchmark's measurements into the "Overhead"
// section of docs/benchmarks.md: medians and min–max over the repetitions, with the
// served paths as ratios and differences against the in-process baseline of the same run.
//
//	go run ./bench/report --results .data/bench --doc docs/benchmarks.md --machine "…" --command "make bench"
//
// Input: RESULTS/overhead.tsv, one line per run: TARGET CONC REP RPS P50_NS P99_NS
// (written by scripts/bench-overhead.sh). The section between the markers
// "<!-- overhead:begin -->" and "<!-- overhead:end -->" is replaced; the rest of the file is kept.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	beginMark = "<!-- overhead:begin -->"
	endMark   = "<!-- overhead:end -->"
)

type run struct {
	rps, p50, p99 float64 // p50/p99 in µs
}

type key struct {
	target string
	conc   int
}

func main() {
	results := flag.String("results", ".data/bench", "results `dir` with overhead.tsv")
	doc := flag.String("doc", "docs/benchmarks.md", "markdown `file` to update")
	machine := flag.String("machine", "", "machine description")
	command := flag.String("command", "make bench", "command that produced the results")
	date := flag.String("date", time.Now().UTC().Format("2006-01-02 15:04 UTC"), "date of the run")
	flag.Parse()
	if err := report(*results, *doc, *machine, *command, *date); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func report(dir, doc, machine, command, date string) error {
	runs, err := readTSV(filepath.Join(dir, "overhead.tsv"))
	if err != nil {
		return err
	}
	section := render(runs, machine, command, date)
	old, err := os.ReadFile(doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	text := string(old)
	if i, j := strings.Index(text, beginMark), strings.Index(text, endMark); i >= 0 && j > i {
		text = text[:i] + section + text[j+len(endMark):]
	} else {
		text += "\n" + section + "\n"
	}
	return os.WriteFile(doc, []byte(text), 0o644)
}

// readTSV reads runs by target and concurrency, each list in repetition order.
func readTSV(path string) (map[key][]run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("overhead results: %w", err)
	}
	defer f.Close()
	out := map[key][]run{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 6 {
			return nil, fmt.Errorf("%s:%d: want TARGET CONC REP RPS P50_NS P99_NS, got %q", path, line, sc.Text())
		}
		var v [5]float64
		for i, s := range fs[1:] {
			if v[i], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("%s:%d: field %d: %w", path, line, i+2, err)
			}
		}
		k := key{fs[0], int(v[0])}
		out[k] = append(out[k], run{rps: v[2], p50: v[3] / 1000, p99: v[4] / 1000})
	}
	return out, sc.Err()
}

// stat is a median with its min–max.
func stat(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%s (%s–%s)", num(med), num(s[0]), num(s[len(s)-1]))
}

func num(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

// paired applies f to the runs of a and b with the same repetition.
func paired(a, b []run, f func(x, y run) float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		out = append(out, f(a[i], b[i]))
	}
	return out
}

func field(rs []run, f func(run) float64) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

func render(runs map[key][]run, machine, command, date string) string {
	var b strings.Builder
	reps := len(runs[key{"inproc", 1}])
	fmt.Fprintf(&b, "%s\n## Overhead (tiny MLP, bench/testdata/mlp.onnx)\n\n", beginMark)
	fmt.Fprintf(&b, "Machine: %s. Date: %s. Command: `%s`. %d repetitions; each cell is the median (min–max).\n\n", machine, date, command, reps)
	b.WriteString("| path | c | requests/s | p50 µs | p99 µs |\n|---|---|---|---|---|\n")
	for _, c := range []int{1, 16} {
		for _, t := range []string{"inproc", "direct", "gateway-http", "gateway"} {
			rs := runs[key{t, c}]
			if len(rs) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", t, c,
				stat(field(rs, func(r run) float64 { return r.rps })),
				stat(field(rs, func(r run) float64 { return r.p50 })),
				stat(field(rs, func(r run) float64 { return r.p99 })))
		}
	}
	in1, gw1, in16, gw16 := runs[key{"inproc", 1}], runs[key{"gateway", 1}], runs[key{"inproc", 16}], runs[key{"gateway", 16}]
	b.WriteString("\nAgainst the in-process baseline of the same repetition:\n\n| measure | goal | result |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| p50 overhead at c=1 (gateway − inproc) | ≤ 150 µs | %s µs |\n", stat(paired(gw1, in1, func(g, i run) float64 { return g.p50 - i.p50 })))
	fmt.Fprintf(&b, "| p99 overhead at c=1 (gateway − inproc) | ≤ 1000 µs | %s µs |\n", stat(paired(gw1, in1, func(g, i run) float64 { return g.p99 - i.p99 })))
	fmt.Fprintf(&b, "| p50 ratio at c=1 (gateway / inproc) | | %s× |\n", stat(paired(gw1, in1, func(g, i run) float64 { return g.p50 / i.p50 })))
	fmt.Fprintf(&b, "| requests/s at c=16 through the gateway | ≥ 10,000 | %s |\n", stat(field(gw16, func(r run) float64 { return r.rps })))
	fmt.Fprintf(&b, "| throughput ratio at c=16 (gateway / inproc) | | %s× |\n", stat(paired(gw16, in16, func(g, i run) float64 { return g.rps / i.rps })))
	if h16 := runs[key{"gateway-http", 16}]; len(h16) > 0 {
		h1 := runs[key{"gateway-http", 1}]
		fmt.Fprintf(&b, "| p50 at c=1, unix-socket frames / HTTP to the worker (gateway / gateway-http) | | %s× |\n", stat(paired(gw1, h1, func(g, h run) float64 { return g.p50 / h.p50 })))
		fmt.Fprintf(&b, "| requests/s at c=16, unix-socket frames / HTTP to the worker | | %s× |\n", stat(paired(gw16, h16, func(g, h run) float64 { return g.rps / h.rps })))
	}
	b.WriteString(endMark)
	return b.String()
}
