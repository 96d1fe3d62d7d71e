#!/usr/bin/env bash
# Rebuilds the committed testdata/tf/textcnn fixture: the TextCNN model of the seed's example 3
# (input_ids_a_1 → ... → l2_normalize). scripts/make-textcnn-fixture.mjs writes it as a
# TensorFlow.js graph model, scripts/tfjs-to-frozen.mjs turns that into frozen.pb and computes
# reference.json with @tensorflow/tfjs's pure-JS CPU backend, and numpy writes the Blade
# test_data the service file names (test_len9240_bc1.npy: a pickled list of TF feed dicts).
# Deterministic: a rerun writes the same files. Needs node, @tensorflow/tfjs (installed by
# scripts/tf-fixtures.sh into ${OPENEAS_CACHE:-$HOME/.cache/openeas}/node) and /usr/bin/python3
# with numpy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OPENEAS_CACHE:-$HOME/.cache/openeas}
node_dir=$cache/node
out=$root/testdata/tf/textcnn

[ -d "$node_dir/node_modules/@tensorflow/tfjs" ] || { echo "make-textcnn-fixture: run scripts/tf-fixtures.sh first (it installs @tensorflow/tfjs)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node "$root/scripts/make-textcnn-fixture.mjs" --out "$tmp/tfjs"
NODE_PATH=$node_dir/node_modules node "$root/scripts/tfjs-to-frozen.mjs" \
  --model "$tmp/tfjs/model.json" --out "$tmp/frozen" --name textcnn
mkdir -p "$out"
# The graph has no fused ops, so frozen-unfused.pb would be the same bytes: not kept.
cp "$tmp/frozen/frozen.pb" "$tmp/frozen/reference.json" "$out/"
# The reference records tfjs's run time, which differs per run; drop it so reruns are identical.
/usr/bin/python3 - "$out" <<'EOF'
import json, sys
import numpy as np

out = sys.argv[1]
ref_path = out + '/reference.json'
with open(ref_path) as f:
    ref = json.load(f)
ref.pop('tfjs_ms', None)
with open(ref_path, 'w') as f:
    f.write(json.dumps(ref, indent=1) + '\n')

# Blade's test_data: 4 feed dicts of one sequence each (batch 1, as the seed's name says),
# token ids in the embedding's vocabulary, keyed by the TF tensor name.
rng = np.random.default_rng(9240)
feeds = [{'input_ids_a_1:0': rng.integers(0, 500, size=(1, 32), dtype=np.int32)} for _ in range(4)]
np.save(out + '/test_len9240_bc1.npy', np.array(feeds, dtype=object), allow_pickle=True)
EOF
ls -l "$out"
