#!/usr/bin/env bash
# The GPU check (run on a GPU host by the device tool; see docs/benchmarks.md "## PyTorch"):
# builds libopeneas_torch.so against the PyTorch wheel's CUDA libtorch, exports a TorchScript
# ResNet-50 (random weights) with the wheel's torch, and measures on the GPU, batch 1:
#   - PyTorch itself running the same TorchScript (input to GPU, output back), for reference
#   - the pytorch_gpu processor's Predict (Go test binary TestLatency, built on Debian)
#   - eas-worker serving it (EAS PyTorch protobuf over loopback HTTP, keep-alive client)
# CARRY holds eas-worker and torchproc.test built on a Debian machine:
#   go build -o .torchgpu/ ./cmd/eas-worker && go test -c -o .torchgpu/torchproc.test ./internal/processor/torchproc
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
carry=${CARRY:-$root/.torchgpu}
work=${WORK:-/tmp/torchgpu}
mkdir -p "$work/b/model"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
TORCH_DIR=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
abi=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
t0=$(date +%s)
TORCH_DIR=$TORCH_DIR TORCH_CXX11_ABI=$abi OPENEAS_CACHE=$work/cache CXX=${CXX:-g++} "$root/scripts/build-torch-shim.sh" "$work/bin"
echo "shim built in $(( $(date +%s) - t0 )) s: $(cat "$work/bin/libopeneas_torch.json")"
export LD_LIBRARY_PATH=$TORCH_DIR/lib:${LD_LIBRARY_PATH:-}
WORK=$work python3 - <<'PY'
import json, os, time, torch, torchvision
w = os.environ["WORK"]
m = torchvision.models.resnet50(weights=None).eval()
with torch.no_grad():
    t = torch.jit.trace(m, torch.randn(1, 3, 224, 224))
t.save(f"{w}/b/model/model.pt")
json.dump({"inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 3, 224, 224]}],
           "outputs": [{"name": "output_0", "dtype": "float32", "shape": [-1, 1000]}]}, open(f"{w}/b/model/model.pt.signature.json", "w"))
json.dump({"schema": 1, "processor": "pytorch_gpu", "model_entry": "model.pt", "runtime": {},
           "model_digest": "sha256:0", "model_path": "gpu.sh", "created": "2026-01-01T00:00:00Z"}, open(f"{w}/b/bundle.json", "w"))
tc = torch.jit.load(f"{w}/b/model/model.pt", map_location="cuda").eval()
x = torch.randn(1, 3, 224, 224)
with torch.inference_mode():
    for _ in range(20):
        tc(x.cuda()).cpu()
    ts = []
    for _ in range(200):
        t0 = time.perf_counter(); tc(x.cuda()).cpu(); ts.append((time.perf_counter() - t0) * 1e3)
ts.sort()
print("RESULT pytorch-direct median %.3f min %.3f max %.3f ms" % (ts[100], ts[0], ts[-1]))
PY
OPENEAS_TORCH_SHIM=$work/bin/libopeneas_torch.so OPENEAS_TORCH_BENCH="$work/b/model/model.pt 1 200 float 1 3 224 224" \
  OPENEAS_TORCH_BENCH_DEVICE=cuda "$carry/torchproc.test" -test.run '^TestLatency$' -test.count=1 | sed 's/^latency/RESULT processor/'
"$carry/eas-worker" --bundle "$work/b" --name r50 --listen 127.0.0.1:18080 --torch-shim "$work/bin/libopeneas_torch.so" >"$work/w.out" 2>"$work/w.err" &
wpid=$!
for _ in $(seq 180); do grep -q '"ready"\|"failed"' "$work/w.out" 2>/dev/null && break; sleep 1; done
cat "$work/w.out"; grep -i "serving with\|error" "$work/w.err" | tail -3 || true
python3 - <<'PY'
import http.client, random, struct, time
def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F; n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n: return bytes(b)
def field(num, payload): return varint(num << 3 | 2) + varint(len(payload)) + payload
vals = [random.gauss(0, 1) for _ in range(3 * 224 * 224)]
shape = field(1, b"".join(varint(d) for d in (1, 3, 224, 224)))
arr = varint(1 << 3) + varint(1) + field(2, shape) + field(3, struct.pack("<%df" % len(vals), *vals))
body = field(1, arr)
c = http.client.HTTPConnection("127.0.0.1", 18080)
ts = []
for i in range(220):
    t0 = time.perf_counter()
    c.request("POST", "/predict", body, {"Content-Type": "application/octet-stream"})
    r = c.getresponse(); data = r.read()
    if r.status != 200: raise SystemExit("predict: %d %s" % (r.status, data[:300]))
    if i >= 20: ts.append((time.perf_counter() - t0) * 1e3)
ts.sort()
print("RESULT served median %.3f min %.3f max %.3f ms (%d-byte response)" % (ts[100], ts[0], ts[-1], len(data)))
PY
kill $wpid; wait $wpid || true
