#!/bin/bash
# Batching benchmark: ResNet-50 (exported by scripts/export-models.py into the cache) served
# by one instance with and without metadata.rpc.batching, at concurrency 8, BENCH_REPS times
# (default 3) for BENCH_BATCH_DURATION each (default 30s), alternating the two services so
# that both see the same machine. Prints throughput and p99 per run and the ratios.
# Goal (issue 4): throughput with batching >= 1.5x without, at a p99 <= 2x the unbatched p99.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
REPS=${BENCH_REPS:-3}
DUR=${BENCH_BATCH_DURATION:-30s}
MODEL=${OPENEAS_CACHE:-$HOME/.cache/openeas}/models/resnet50.onnx
if [ ! -f "$MODEL" ]; then
	echo "batching: $MODEL missing: run /usr/bin/python3 scripts/export-models.py first (needs python3-torch)"
	exit 0
fi
# scripts/export-models.py names ResNet-50's input "input".
go run ./bench/mkreq --input input --shape 1,3,224,224 --out "$WORK/req.pb"

start_easd
for mode in off on; do
	batching=false
	[ $mode = on ] && batching=true
	cat >"$WORK/r50-$mode.json" <<JSON
{"name": "r50_$mode", "model_path": "$MODEL", "processor": "onnxruntime_cpu",
 "metadata": {"instance": 1, "rpc": {"batching": $batching, "max_batch_size": 8, "max_batch_timeout": 20, "keepalive": 60000}}}
JSON
	eascmd create "$WORK/r50-$mode.json" >"$WORK/create-$mode.out" || { cat "$WORK/create-$mode.out"; exit 1; }
	eascmd bench "r50_$mode" -c 8 -d 5s --data "$WORK/req.pb" >/dev/null # warm
done
rm -f "$RESULTS"/batching-*.json
for rep in $(seq "$REPS"); do
	for mode in off on; do
		out="$RESULTS/batching-$mode-$rep.json"
		eascmd bench "r50_$mode" -c 8 -d "$DUR" --data "$WORK/req.pb" -o json >"$out"
		printf 'batching %-3s rep %s: %s req/s, p50 %s ns, p99 %s ns, errors %s\n' "$mode" "$rep" \
			"$(json_field "$out" throughput_rps)" "$(json_field "$out" p50_ns)" "$(json_field "$out" p99_ns)" "$(json_field "$out" errors)"
	done
done
echo "machine: $(machine)"
