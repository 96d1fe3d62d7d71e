#!/bin/bash
# make bench: the serving benchmarks (not part of make test). Results go to docs/benchmarks.md.
#   1. overhead  - scripts/bench-overhead.sh, then bench/report writes the Overhead section
#   2. faults    - scripts/bench-faults.sh (a worker killed under load); printed, to copy into the doc
#   3. batching  - scripts/bench-batching.sh (ResNet-50, needs python3-torch; skipped when absent)
# Env: BENCH_REPS (3), BENCH_DURATION (5s per run), BENCH_FAULT_DURATION (60s),
# BENCH_RESULTS (.data/bench), OPENEAS_BIN (bin), OPENEAS_ORT_LIB (.cache/libonnxruntime.so).
# Set BENCH_CPUS=0,1 to pin every process (easd, workers, load generator) to those CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_RESULTS=${BENCH_RESULTS:-$PWD/.data/bench}
mkdir -p "$BENCH_RESULTS"
pin=()
[ -n "${BENCH_CPUS:-}" ] && pin=(taskset -c "$BENCH_CPUS")
machine="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs${BENCH_CPUS:+ (pinned to CPUs $BENCH_CPUS)}"

echo "== overhead"
"${pin[@]}" scripts/bench-overhead.sh
go run ./bench/report --results "$BENCH_RESULTS" --doc docs/benchmarks.md --machine "$machine" \
	--command "make bench${BENCH_CPUS:+ BENCH_CPUS=$BENCH_CPUS}"
echo "docs/benchmarks.md: Overhead section updated"

echo "== faults under load"
"${pin[@]}" scripts/bench-faults.sh

if [ -x scripts/bench-batching.sh ]; then
	echo "== batching"
	"${pin[@]}" scripts/bench-batching.sh || echo "batching benchmark failed (see above)"
fi
