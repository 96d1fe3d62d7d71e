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
	d := make([]time.Duration, runs)
	for i := range runs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := s.Run(ctx, samples[i%len(samples)], outputs); err != nil {
			return nil, fmt.Errorf("timed run %d: %w", i, err)
		}
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	med := d[runs/2]
	if runs%2 == 0 {
		med = (d[runs/2-1] + d[runs/2]) / 2
	}
	return &report.Timing{Runs: runs, MedianMS: ms(med), MinMS: ms(d[0]), MaxMS: ms(d[runs-1])}, nil
}
