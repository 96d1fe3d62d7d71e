package blade

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/openeas/openeas/internal/blade/report"
)

// measure runs warm-up passes and then runs timed passes over the samples in turn (batch as
// given), returning the latency distribution.
func measure(ctx context.Context, s Session, samples []Sample, outputs []string, runs int) (*report.Timing, error) {
	warm := max(2, min(10, runs/10))
	for i := range warm {
		if _, err := s.Run(ctx, samples[i%len(samples)], outputs); err != nil {
			return nil, fmt.Errorf("warm-up run: %w", err)
		}
	}
	d, err := timedRuns(ctx, s, samples, outputs, 0, runs, nil)
	if err != nil {
		return nil, err
	}
	return summarize(d), nil
}

// timedRuns appends the latencies of runs timed passes (starting at sample index first) to d.
func timedRuns(ctx context.Context, s Session, samples []Sample, outputs []string, first, runs int, d []time.Duration) ([]time.Duration, error) {
	for i := first; i < first+runs; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := s.Run(ctx, samples[i%len(samples)], outputs); err != nil {
			return nil, fmt.Errorf("timed run %d: %w", i, err)
		}
		d = append(d, time.Since(start))
	}
	return d, nil
}

// summarize turns latencies into a Timing (median, min, max).
func summarize(d []time.Duration) *report.Timing {
	d = slices.Clone(d)
	slices.Sort(d)
	n := len(d)
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	med := d[n/2]
	if n%2 == 0 {
		med = (d[n/2-1] + d[n/2]) / 2
	}
	return &report.Timing{Runs: n, MedianMS: ms(med), MinMS: ms(d[0]), MaxMS: ms(d[n-1])}
}

// confirmRounds is how many alternating rounds confirm the final choice.
const confirmRounds = 5

// interleaved times several sessions against each other in alternating rounds, so that a
// machine whose load drifts during the run slows them all alike instead of favouring
// whichever happened to be timed in a quiet moment. Each gets runs timed passes in all.
func interleaved(ctx context.Context, sessions []Session, samples []Sample, outputs []string, runs int) ([]*report.Timing, error) {
	per := max(1, runs/confirmRounds)
	d := make([][]time.Duration, len(sessions))
	for i, s := range sessions {
		for w := range max(2, min(10, runs/10)) {
			if _, err := s.Run(ctx, samples[w%len(samples)], outputs); err != nil {
				return nil, fmt.Errorf("warm-up run: %w", err)
			}
		}
		d[i] = make([]time.Duration, 0, per*confirmRounds)
	}
	for r := range confirmRounds {
		for i, s := range sessions {
			var err error
			if d[i], err = timedRuns(ctx, s, samples, outputs, r*per, per, d[i]); err != nil {
				return nil, err
			}
		}
	}
	out := make([]*report.Timing, len(sessions))
	for i := range d {
		out[i] = summarize(d[i])
	}
	return out, nil
}
