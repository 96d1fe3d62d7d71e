#!/usr/bin/env bash
# Builds libopeneas_torch.so, the C shim over libtorch (internal/torch/shim/), and copies it
# to OUT_DIR (default: bin/). The build is cached by a hash of the source, the flags and the
# libtorch version in ${OPENEAS_CACHE:-$HOME/.cache/openeas}/torch-shim/<hash>/, so a second
# run (and CI's fresh clone on the same machine) takes no time; the first takes 30-90 s.
#
#   libtorch: Debian's libtorch-dev (/usr/include/torch, the default), or the one inside a
#   PyTorch wheel: TORCH_DIR=/path/to/site-packages/torch (headers in include/, libraries
#   in lib/; CUDA libraries are linked when lib/libtorch_cuda.so exists).
# Exit status 3 (and a message) when no libtorch is installed: callers may skip the shim.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin}
src=$root/internal/torch/shim
cache=${OPENEAS_CACHE:-$HOME/.cache/openeas}/torch-shim
CXX=${CXX:-g++}
cuda=false

flags=(-O2 -fPIC -shared -std=c++17)
libs=(-Wl,--no-as-needed -ltorch -ltorch_cpu -lc10)
if [ -n "${TORCH_DIR:-}" ]; then
  [ -f "$TORCH_DIR/include/torch/script.h" ] || { echo "build-torch-shim: $TORCH_DIR/include/torch/script.h not found" >&2; exit 3; }
  abi=${TORCH_CXX11_ABI:-1}
  flags+=(-I"$TORCH_DIR/include" -I"$TORCH_DIR/include/torch/csrc/api/include" -D_GLIBCXX_USE_CXX11_ABI="$abi")
  libs=(-L"$TORCH_DIR/lib" -Wl,-rpath,"$TORCH_DIR/lib" "${libs[@]}")
  if [ -f "$TORCH_DIR/lib/libtorch_cuda.so" ]; then
    libs+=(-ltorch_cuda -lc10_cuda)
    cuda=true
  fi
  # The header moved from torch/csrc/api/include/torch/ (1.x) to torch/ (2.x).
  version=$(cat "$TORCH_DIR/include/torch/version.h" "$TORCH_DIR/include/torch/csrc/api/include/torch/version.h" 2>/dev/null |
    tr -d '\\\n' | sed -n 's/.*define TORCH_VERSION *"\([^"]*\)".*/\1/p' | head -1 || true)
else
  if [ ! -f /usr/include/torch/script.h ]; then
    echo "build-torch-shim: libtorch is not installed (apt-get install libtorch-dev libopenblas0-pthread); skipping the PyTorch shim" >&2
    exit 3
  fi
  flags+=(-I/usr/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1)
  # Debian's 1.13.1 headers say 1.13.0; the package version is the truth.
  version=$(dpkg-query -W -f '${Version}' libtorch-dev 2>/dev/null | sed 's/[+~-].*//')
fi

flags+=(-DOET_TORCH_VERSION="\"${version:-unknown}\"")

hash=$( { cat "$src/openeas_torch.cpp" "$src/openeas_torch.h"; echo "${flags[*]} ${libs[*]} $version $CXX"; } | sha256sum | cut -c1-16)
lib=$cache/$hash/libopeneas_torch.so
if [ ! -f "$lib" ]; then
  echo "build-torch-shim: compiling the libtorch shim (libtorch $version; 30-90 s, once per source change)" >&2
  mkdir -p "$cache/$hash"
  tmp=$(mktemp "$cache/$hash/.build.XXXXXX")
  "$CXX" "${flags[@]}" -o "$tmp" "$src/openeas_torch.cpp" "${libs[@]}"
  mv -f "$tmp" "$lib"
fi
mkdir -p "$out"
cp -f "$lib" "$out/libopeneas_torch.so.tmp" && mv -f "$out/libopeneas_torch.so.tmp" "$out/libopeneas_torch.so"
# What easd reads (internal/torch/torchinstall) to accept PyTorch services without loading libtorch.
printf '{"libtorch":"%s","cuda":%s}\n' "${version:-unknown}" "$cuda" > "$out/libopeneas_torch.json"
echo "$out/libopeneas_torch.so"
