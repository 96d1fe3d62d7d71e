#!/usr/bin/env bash
# Blade benchmark: ResNet-50, a BERT-base-sized encoder (seq 128), PP-OCRv4 rec, the PP-OCR
# mobile cls model and the Fashion-MNIST CNN, at o1 and o2, 1 and 2 threads, against ONNX
# Runtime's defaults timed in the same run. Writes the "## Blade" section of docs/benchmarks.md.
# Not part of make test; takes 20-40 minutes on 2 cores. See docs/blade.md ("Benchmarks").
#
# Usage: scripts/bench-blade.sh [bladebench flags]   e.g. -runs 100, -threads 1, -only 'Fashion-MNIST CNN',
#        -doc '' to print the section instead of writing it (go run ./internal/blade/conformance/bladebench -h)
#
# Needs: scripts/fetch-deps.sh (ONNX Runtime, PaddleOCR models); for ResNet-50 and the encoder
# Debian's python3-torch, python3-torchvision and python3-onnx (models are exported once into
# ${OPENEAS_CACHE:-$HOME/.cache/openeas}/models/ by scripts/export-models.py); for Fashion-MNIST
# accuracy Debian's dataset-fashion-mnist. Missing pieces are reported in the table, not fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .cache/libonnxruntime.so ] || scripts/fetch-deps.sh
export OPENEAS_ORT_LIB=${OPENEAS_ORT_LIB:-$PWD/.cache/libonnxruntime.so}
models="${OPENEAS_CACHE:-$HOME/.cache/openeas}/models"
if [ ! -f "$models/resnet50.onnx" ] || [ ! -f "$models/encoder.onnx" ] || [ ! -f "$models/resnet50.calib.npy" ]; then
	if /usr/bin/python3 -c 'import torch, torchvision, onnx' 2>/dev/null; then
		echo "bench-blade: exporting ResNet-50 and the encoder (once, ~1-2 min)" >&2
		/usr/bin/python3 scripts/export-models.py
	else
		echo "bench-blade: ResNet-50/encoder not exported and python3-torch/torchvision/onnx missing (apt-get install -y python3-torch python3-torchvision python3-onnx); they will be listed as not measured" >&2
	fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/blade" ./cmd/blade
go build -o "$tmp/bladebench" ./internal/blade/conformance/bladebench
"$tmp/bladebench" -blade "$tmp/blade" -command "scripts/bench-blade.sh${*:+ $*}" "$@"
