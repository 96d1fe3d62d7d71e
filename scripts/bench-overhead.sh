#!/bin/bash
# Overhead benchmark: the tiny MLP (bench/testdata/mlp.onnx) run three ways in the same run,
#   inproc  - in this machine's process with ONNX Runtime (bench/inproc), the baseline;
#   direct  - through one eas-worker over loopback HTTP (codec + worker, no gateway);
#   gateway - through easd's gateway and a worker, as users call it (gateway→worker: frames
#             on a unix socket, the default);
#   gateway-http - the same through a second easd with --worker-transport http;
# at concurrency 1 (latency) and 16 (throughput), BENCH_REPS times (default 3), each run
# BENCH_DURATION long (default 5s). The load generator is eascmd bench on the same machine.
# Results: $BENCH_RESULTS/overhead-*.json and overhead.tsv (one line per run). Usage: scripts/bench-overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
REPS=${BENCH_REPS:-3}
DUR=${BENCH_DURATION:-5s}
INPROC=${BENCH_INPROC:-}
if [ -z "$INPROC" ]; then
	go build -o "$WORK/inproc" ./bench/inproc
	INPROC=$WORK/inproc
fi
rm -f "$RESULTS"/overhead-*.json "$RESULTS/overhead.tsv"

cat >"$WORK/mlp.json" <<JSON
{"name": "mlp", "model_path": "$PWD/bench/testdata/mlp.onnx", "processor": "onnxruntime_cpu", "metadata": {"instance": 1}}
JSON
start_easd http --worker-transport http
eascmd create "$WORK/mlp.json" >"$WORK/create-http.out" || { cat "$WORK/create-http.out"; exit 1; }
HTTP_ENDPOINT=$EAS_ENDPOINT HTTP_TOKEN=$EAS_ADMIN_TOKEN
start_easd
eascmd create "$WORK/mlp.json" >"$WORK/create.out" || { cat "$WORK/create.out"; exit 1; }
eascmd desc mlp -o json >"$WORK/desc.json"
bundle=$(json_field "$WORK/desc.json" Image)
start_direct_worker "$WORK/data/bundles/${bundle#sha256:}"
"$INPROC" --write-request "$WORK/req.pb"

run_one() { # target conc rep
	local out="$RESULTS/overhead-$1-c$2-$3.json"
	case $1 in
	inproc) "$INPROC" --model bench/testdata/mlp.onnx -c "$2" -d "$DUR" >"$out" ;;
	direct) eascmd bench mlp -c "$2" -d "$DUR" --data "$WORK/req.pb" --url "http://$DIRECT_ADDR/predict" --token none -o json >"$out" ;;
	gateway) eascmd bench mlp -c "$2" -d "$DUR" --data "$WORK/req.pb" -o json >"$out" ;;
	gateway-http) EAS_ENDPOINT=$HTTP_ENDPOINT EAS_ADMIN_TOKEN=$HTTP_TOKEN eascmd bench mlp -c "$2" -d "$DUR" --data "$WORK/req.pb" -o json >"$out" ;;
	esac
	local rps p50 p99
	rps=$(json_field "$out" throughput_rps) p50=$(json_field "$out" p50_ns) p99=$(json_field "$out" p99_ns)
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$rps" "$p50" "$p99" >>"$RESULTS/overhead.tsv"
	printf '%-8s c=%-3s rep %s: %s req/s, p50 %s ns, p99 %s ns\n' "$1" "$2" "$3" "$rps" "$p50" "$p99"
}

# Warm every path (connections, ORT arenas, Go heaps) before measuring.
eascmd bench mlp -c 16 -d 1s --data "$WORK/req.pb" >/dev/null
EAS_ENDPOINT=$HTTP_ENDPOINT EAS_ADMIN_TOKEN=$HTTP_TOKEN eascmd bench mlp -c 16 -d 1s --data "$WORK/req.pb" >/dev/null
eascmd bench mlp -c 16 -d 1s --data "$WORK/req.pb" --url "http://$DIRECT_ADDR/predict" --token none >/dev/null
for rep in $(seq "$REPS"); do
	for c in 1 16; do
		for target in inproc direct gateway-http gateway; do
			run_one "$target" "$c" "$rep"
		done
	done
done
echo "machine: $(machine)" | tee "$RESULTS/overhead-machine.txt"
