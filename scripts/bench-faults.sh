#!/bin/bash
# Faults under load: the MLP on 2 instances, BENCH_FAULT_DURATION (default 60s) of load at
# concurrency 8 with a 10 s client timeout, and one worker killed with SIGKILL a third of
# the way in. Records every outcome (a hang shows up as a "timeout" error), the gateway's
# dial-error retries and the restarts from /metrics.
# Results: $BENCH_RESULTS/faults.json, faults-metrics.txt. Usage: scripts/bench-faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
DUR=${BENCH_FAULT_DURATION:-60s}
secs=${DUR%s}
INPROC=${BENCH_INPROC:-}
if [ -z "$INPROC" ]; then
	go build -o "$WORK/inproc" ./bench/inproc
	INPROC=$WORK/inproc
fi
"$INPROC" --write-request "$WORK/req.pb"

start_easd
cat >"$WORK/mlp.json" <<JSON
{"name": "mlp", "model_path": "$PWD/bench/testdata/mlp.onnx", "processor": "onnxruntime_cpu", "metadata": {"instance": 2}}
JSON
eascmd create "$WORK/mlp.json" >"$WORK/create.out" || { cat "$WORK/create.out"; exit 1; }

eascmd bench mlp -c 8 -d "$DUR" --timeout 10s --data "$WORK/req.pb" -o json >"$RESULTS/faults.json" &
bench=$!
sleep $((secs / 3))
pids=($(worker_pids mlp))
victim=${pids[0]:?no worker of mlp found}
echo "killing worker pid $victim at $((secs / 3))s of ${secs}s"
kill -9 "$victim"
wait "$bench"
http_get /metrics | grep -E '^eas_(requests_total|gateway_retries_total|worker_restarts_total|ready_instances)\{' >"$RESULTS/faults-metrics.txt"
cat "$RESULTS/faults-metrics.txt"
grep -A8 '"codes"' "$RESULTS/faults.json"
echo "machine: $(machine)" >"$RESULTS/faults-machine.txt"
