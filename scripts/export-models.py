#!/usr/bin/python3
"""Exports Blade's benchmark models as ONNX with a dynamic batch axis (random weights, real
architectures), into ${OPENEAS_CACHE:-$HOME/.cache/openeas}/models/:

    resnet50.onnx   torchvision ResNet-50 (weights=None); input "input" float32 [batch,3,224,224],
                    output "logits" [batch,1000]; opset 17
    encoder.onnx    a BERT-base-sized encoder in plain torch: 12 layers, hidden 768, 12 heads,
                    FFN 3072, vocab 30522, GELU (erf), post-LayerNorm, seq 128 (dynamic);
                    inputs "input_ids" and "attention_mask" int64 [batch,seq], output
                    "last_hidden_state" [batch,seq,768]; opset 14

Needs Debian's torch (run with /usr/bin/python3, not the first python3 on PATH):
    apt-get install -y python3-torch python3-torchvision python3-onnx
It also writes small synthetic calibration sets (Blade's TensorFlow-style .npy: a list of
feed dicts) for the benchmark's o2 runs of the CNNs, which have no real data here:
    resnet50.calib.npy, ppocr-rec.calib.npy, ppocr-cls.calib.npy
(16 samples each, values drawn from the same ranges scripts/bench-blade.sh gives blade). The
encoder gets none: without calibration data blade quantizes its MatMuls dynamically, which is
what transformers want.

Existing files are kept (idempotent); pass --force to export again. Seeded: the same torch
build gives the same weights.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

CACHE = os.environ.get("OPENEAS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "openeas")
OUT = os.path.join(CACHE, "models")
FORCE = "--force" in sys.argv[1:]


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads, self.dim = heads, hidden // heads
        self.q, self.k, self.v = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def split(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.dim).transpose(1, 2)

    def forward(self, x, bias):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dim) + bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        b, _, s, _ = ctx.shape
        return self.out(ctx.transpose(1, 2).reshape(b, s, self.heads * self.dim))


class Layer(nn.Module):
    """One BERT layer: attention and FFN, each with a residual and a post-LayerNorm."""

    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.attn = SelfAttention(hidden, heads)
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.fc1, self.fc2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, bias):
        x = self.ln1(x + self.attn(x, bias))
        h = self.fc1(x)
        h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))  # GELU as BERT exports it
        return self.ln2(x + self.fc2(h))


class Encoder(nn.Module):
    def __init__(self, vocab=30522, hidden=768, layers=12, heads=12, ffn=3072, max_pos=512):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_pos, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        # Built one by one so every layer has its own random weights (not deep copies).
        self.layers = nn.ModuleList([Layer(hidden, heads, ffn) for _ in range(layers)])

    def forward(self, input_ids, attention_mask):
        s = input_ids.shape[1]
        pos = torch.arange(s, device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.pos(pos) + self.token_type(torch.zeros_like(input_ids))
        x = self.ln(x)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x


def export(name, model, args, input_names, output_names, dynamic_axes, opset):
    path = os.path.join(OUT, name)
    if os.path.exists(path) and not FORCE:
        print(f"{path}: exists (--force to export again)")
        return
    start = time.time()
    model.eval()
    tmp = path + ".tmp"
    # Grad stays enabled: exporting under no_grad makes torch pick fused inference kernels
    # (aten::_transformer_encoder_layer_fwd) that have no ONNX export.
    torch.onnx.export(model, args, tmp, opset_version=opset, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    os.replace(tmp, path)
    print(f"{path}: exported in {time.time() - start:.0f} s ({os.path.getsize(path) / 1e6:.0f} MB)")


def calibration(name, make, n=16):
    """Writes n synthetic samples from make(rng) as a list of feed dicts (np.save)."""
    path = os.path.join(OUT, name)
    if os.path.exists(path) and not FORCE:
        print(f"{path}: exists")
        return
    rng = np.random.default_rng(0)
    feeds = np.empty(n, dtype=object)
    for i in range(n):
        feeds[i] = make(rng)
    np.save(path + ".tmp.npy", feeds, allow_pickle=True)
    os.replace(path + ".tmp.npy", path)
    print(f"{path}: {n} synthetic samples")


def main():
    import torchvision

    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    export("resnet50.onnx", torchvision.models.resnet50(weights=None), (torch.randn(1, 3, 224, 224),),
           ["input"], ["logits"], {"input": {0: "batch"}, "logits": {0: "batch"}}, 17)
    torch.manual_seed(1)
    ids = torch.randint(0, 30522, (1, 128), dtype=torch.int64)
    mask = torch.ones(1, 128, dtype=torch.int64)
    export("encoder.onnx", Encoder(), (ids, mask), ["input_ids", "attention_mask"], ["last_hidden_state"],
           {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"}}, 14)

    def uniform(name, shape, lo, hi):
        return lambda rng: {name: rng.uniform(lo, hi, shape).astype(np.float32)}

    calibration("resnet50.calib.npy", uniform("input", (1, 3, 224, 224), -2.0, 2.0))
    calibration("ppocr-rec.calib.npy", uniform("x", (1, 3, 48, 320), -1.0, 1.0))
    calibration("ppocr-cls.calib.npy", uniform("x", (1, 3, 48, 192), -1.0, 1.0))


if __name__ == "__main__":
    main()
