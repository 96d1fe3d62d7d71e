"""Exports the TorchScript benchmark models (random weights, real architectures) into the
folder given as argv[1]; run by scripts/bench-torch.sh with Debian's /usr/bin/python3 and
python3-torch / python3-torchvision. Not committed: ResNet-50 is ~100 MB, the encoder ~440 MB.

  resnet50.pt  torchvision ResNet-50, traced at 1x3x224x224 (+ .signature.json)
  bert.pt      a BERT-base-sized encoder: embeddings 30522x768, 12 layers, 12 heads,
               FFN 3072, sequence 128, int64 token ids in, [1,128,768] out (+ .signature.json)
"""
import json
import os
import sys

import torch
import torchvision


def signature(path, inputs, outputs):
    with open(path + ".signature.json", "w") as f:
        json.dump({"inputs": inputs, "outputs": outputs}, f, indent=2)


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = torch.nn.Embedding(30522, 768)
        self.pos = torch.nn.Embedding(512, 768)
        self.norm = torch.nn.LayerNorm(768)
        # Distinct weights per layer (TransformerEncoder deep-copies one layer).
        layer = torch.nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 12, enable_nested_tensor=False)
        for p in self.enc.parameters():
            torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        return self.enc(self.norm(self.tok(ids) + self.pos(pos)))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    p = os.path.join(out, "resnet50.pt")
    if not os.path.exists(p):
        m = torchvision.models.resnet50(weights=None).eval()
        with torch.no_grad():
            torch.jit.trace(m, torch.randn(1, 3, 224, 224)).save(p + ".tmp")
        os.replace(p + ".tmp", p)
        signature(p, [{"name": "image", "dtype": "float32", "shape": [-1, 3, 224, 224]}],
                  [{"name": "output_0", "dtype": "float32", "shape": [-1, 1000]}])
    p = os.path.join(out, "bert.pt")
    if not os.path.exists(p):
        m = Encoder().eval()
        # Traced with grad enabled: the fused fast path (aten::_transformer_encoder_layer_fwd)
        # fails to export otherwise.
        torch.jit.trace(m, torch.randint(0, 30522, (1, 128)), check_trace=False).save(p + ".tmp")
        os.replace(p + ".tmp", p)
        signature(p, [{"name": "ids", "dtype": "int64", "shape": [-1, 128]}],
                  [{"name": "output_0", "dtype": "float32", "shape": [-1, 128, 768]}])


if __name__ == "__main__":
    main()
