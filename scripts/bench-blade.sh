#!/bin/sh
# Runs blade on the PaddleOCR models (o1 and o2) and prints each candidate table.
# Usage: scripts/bench-blade.sh [runs]   (needs .cache from scripts/fetch-deps.sh)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-50}
export OPENEAS_ORT_LIB=${OPENEAS_ORT_LIB:-$PWD/.cache/libonnxruntime.so}
M=.cache/models/ocr-1.4.2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
go build -o "$OUT/blade" ./cmd/blade
echo "# blade on $(hostname), $(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
bench() { # name model shapes level
	echo
	echo "## $1 ($4)"
	"$OUT/blade" optimize --model "$2" --input-shapes "$3" --level "$4" --runs "$RUNS" --output "$OUT/$1-$4" 2>/dev/null
}
for level in o1 o2; do
	bench cls "$M/ch_ppocr_mobile_v2.0_cls_infer.onnx" "1*3*48*192" "$level"
	bench rec "$M/ch_PP-OCRv4_rec_infer.onnx" "1*3*48*320" "$level"
done
