#!/usr/bin/env bash
# make bench, PyTorch part: TorchScript ResNet-50 and a BERT-base-sized encoder (random
# weights, exported by internal/torch/bench/export.py into the cache), measured three ways:
#   1. the pytorch_cpu processor (Go → shim → libtorch) vs libtorch called directly in C++
#      (internal/torch/bench/direct.cpp), same threads, alternating rounds: overhead
#   2. Blade o1 (freeze, optimize_for_inference, threads) vs the unoptimized TorchScript
#   3. Blade o2 (dynamic INT8 Linear) where it applies (the encoder; ResNet-50 has one Linear)
# Results replace the "## PyTorch" section of docs/benchmarks.md.
# Env: RUNS (default 30), THREADS (default 1), ROUNDS (default 2), OPENEAS_BIN (default bin/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OPENEAS_CACHE:-$HOME/.cache/openeas}
models=$cache/models/torch
RUNS=${RUNS:-30}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-2}
bin=${OPENEAS_BIN:-$root/bin}
export PATH=$PATH:/usr/local/go/bin

[ -f "$bin/libopeneas_torch.so" ] || { echo "bench-torch: $bin/libopeneas_torch.so missing: install libtorch-dev and run make build" >&2; exit 1; }
missing=()
for p in python3-torch python3-torchvision libopenblas0-pthread; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-torch: installing ${missing[*]}" >&2
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "bench-torch: exporting models into $models (once; ResNet-50 ~10 s, the encoder ~45 s)" >&2
/usr/bin/python3 "$root/internal/torch/bench/export.py" "$models"

# The direct C++ baseline, cached by source hash.
src=$root/internal/torch/bench/direct.cpp
hash=$(sha256sum "$src" | cut -c1-16)
direct=$cache/torch-bench/$hash/direct
if [ ! -x "$direct" ]; then
  mkdir -p "$(dirname "$direct")"
  echo "bench-torch: compiling the direct libtorch timer (30-90 s)" >&2
  g++ -O2 -std=c++17 -I/usr/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1 -o "$direct.tmp" "$src" \
    -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10
  mv "$direct.tmp" "$direct"
fi

# Go test binary for the processor measurement (TestLatency).
gotest=$cache/torch-bench/torchproc.test
(cd "$root" && go test -c -o "$gotest" ./internal/processor/torchproc/)

declare -A res
measure() { # measure NAME MODEL DTYPE DIMS...
  local name=$1 model=$2 dtype=$3; shift 3
  local dmed=() pmed=() dall="" pall=""
  for r in $(seq "$ROUNDS"); do
    local d p
    d=$("$direct" "$model" "$THREADS" "$RUNS" "$dtype" "$@")
    p=$(OPENEAS_TORCH_SHIM=$bin/libopeneas_torch.so OPENEAS_TORCH_BENCH="$model $THREADS $RUNS $dtype $*" \
      "$gotest" -test.run '^TestLatency$' -test.count=1 | sed -n 's/^latency \([0-9.]*\) \([0-9.]*\) \([0-9.]*\).*/\1 \2 \3/p')
    echo "bench-torch: $name round $r: direct $d | processor $p" >&2
    dall+="$d;"; pall+="$p;"
  done
  res[$name]="$dall|$pall"
}
blade_run() { # blade_run NAME MODEL LEVEL SHAPE
  local out=$cache/torch-bench/blade-$1-$3
  rm -rf "$out"
  "$bin/blade" optimize --model "$2" --output "$out" --level "$3" --input-shapes "$4" --runs "$RUNS" --threads "$THREADS,2" >&2
  python3 - "$out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = {x["name"]: x for x in r["candidates"]}
def t(n):
    x = c.get(n, {}).get("timing")
    return "%.1f (%.1f–%.1f)" % (x["median_ms"], x["min_ms"], x["max_ms"]) if x else "—"
int8 = [x for x in r["candidates"] if x["name"].startswith("int8")]
ok8 = [x for x in int8 if x.get("timing")]
best8 = min(ok8, key=lambda x: x["timing"]["median_ms"]) if ok8 else None
print(json.dumps({"baseline": t("baseline"), "chosen": r["chosen"], "optimized": r["overall"]["optimized"],
  "speedup": r["overall"]["speedup"], "int8": (best8["name"] + " " + t(best8["name"]) + " cos %.5f" % min(a["min_cosine"] for a in best8["accuracy"])) if best8 else
  ((int8[0]["verdict"] if int8 else r["diagnosis"]["message"]) or "—")}))
PY
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
measure resnet50 "$models/resnet50.pt" float 1 3 224 224
measure bert "$models/bert.pt" int64 1 128
r50o1=$(blade_run resnet50 "$models/resnet50.pt" o1 "1*3*224*224")
berto2=$(blade_run bert "$models/bert.pt" o2 "1*128")

load1=$(cut -d' ' -f1-3 /proc/loadavg)
libtorch=$(dpkg-query -W -f '${Version}' libtorch-dev)
python3 - "$root/docs/benchmarks.md" "${res[resnet50]}" "${res[bert]}" "$r50o1" "$berto2" "$THREADS" "$RUNS" "$libtorch" "$load0 → $load1" "$(nproc)" <<'PY'
import json, platform, re, subprocess, sys, datetime
path, r50, bert, r50o1, berto2, threads, runs, libtorch, load, cores = sys.argv[1:]
def rounds(s):
    d, p = s.split("|")
    d = [list(map(float, x.split())) for x in d.split(";") if x.strip()]
    p = [list(map(float, x.split())) for x in p.split(";") if x.strip()]
    return d, p
def row(name, s):
    d, p = rounds(s)
    dm, pm = min(x[0] for x in d), min(x[0] for x in p)
    rng = lambda xs: "%.1f–%.1f" % (min(x[1] for x in xs), max(x[2] for x in xs))
    return "| %s | %.2f (%s) | %.2f (%s) | %+.1f%% |" % (name, dm, rng(d), pm, rng(p), 100 * (pm - dm) / dm)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
o1, o2 = json.loads(r50o1), json.loads(berto2)
o1["int8"] = "— (o1 has no INT8)"
busy = ""
if float(load.split()[0]) > int(cores):
    busy = ("\n\n**The machine was busy (load above its core count) during this run: the figures below are "
            "inflated and noisy, and the overhead column is not a measurement of the processor. Rerun "
            "`make bench` on an idle machine.**")
sec = f"""## PyTorch

TorchScript on libtorch {libtorch} (Debian, OpenBLAS), random weights, batch 1; {cpu} ({cores} cores),
{threads} intra-op thread(s), {runs} timed runs per round after 3 warm-ups, {datetime.date.today()};
load average {load} (1/5/15 min, before → after); written by `scripts/bench-torch.sh` (`make bench`).{busy}

Processor overhead: `pytorch_cpu` Predict (Go → libopeneas_torch.so → libtorch, with the input copy
and output read-back) vs the same forward called directly in C++ (`internal/torch/bench/direct.cpp`,
also copying input and output). Rounds alternate; the table shows the best round's median and the
min–max over all rounds. Budget: ≤ 5 %.

| model | direct C++ median ms (min–max) | processor median ms (min–max) | overhead |
|---|---|---|---|
{row("ResNet-50 1×3×224×224", r50)}
{row("BERT-base-sized encoder, seq 128", bert)}

Blade for TorchScript (`blade optimize`, candidates at {threads} and 2 threads, verified against the original):

| model | level | baseline median ms (min–max) | chosen | optimized | speedup | INT8 |
|---|---|---|---|---|---|---|
| ResNet-50 | o1 | {o1["baseline"]} | {o1["chosen"]} | {o1["optimized"]} | {o1["speedup"]}× | {o1["int8"]} |
| BERT-base-sized encoder | o2 | {o2["baseline"]} | {o2["chosen"]} | {o2["optimized"]} | {o2["speedup"]}× | {o2["int8"]} |

"""
text = open(path).read()
m = re.search(r"^## PyTorch\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
text = text[:m.start()] + sec + text[m.end():] if m else text.rstrip("\n") + "\n\n" + sec
open(path, "w").write(text)
print(sec)
PY
