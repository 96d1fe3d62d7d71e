"""Generates the tiny TorchScript fixtures in this folder (run with Debian's /usr/bin/python3
and python3-torch 1.13; the outputs are committed, tests never run Python):

  mlp.pt      traced Linear(8,16)-ReLU-Linear(16,4); mlp.pt.signature.json declares it
  cnn_bn.pt   traced Conv-BatchNorm-ReLU-pool-Linear (BN with non-trivial running stats)
  tuple.pt    scripted; returns (x * 2, (x.sum(), 3)): nested tuple flattening
  dict.pt     scripted; forward(x, ids) -> Dict[str, Tensor]: named outputs, int64 input
  expected.json  inputs and libtorch's outputs for mlp.pt and cnn_bn.pt, as flat lists
"""
import json
import os
from typing import Dict, Tuple

import torch

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(7)


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, image):
        y = torch.relu(self.bn(self.conv(image)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))


class Tuple_(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[torch.Tensor, int]]:
        return x * 2, (x.sum(), 3)


class Dict_(torch.nn.Module):
    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"scaled": x * ids.to(torch.float32), "total": ids.sum()}


def main():
    expected = {}
    mlp = MLP().eval()
    x = torch.randn(2, 8)
    m = torch.jit.trace(mlp, torch.randn(1, 8))
    m.save(os.path.join(here, "mlp.pt"))
    expected["mlp"] = {"input": x.flatten().tolist(), "shape": list(x.shape), "output": m(x).flatten().tolist()}
    with open(os.path.join(here, "mlp.pt.signature.json"), "w") as f:
        json.dump({"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 8]}],
                   "outputs": [{"name": "output_0", "dtype": "float32", "shape": [-1, 4]}]}, f, indent=2)
        f.write("\n")

    cnn = CNN()
    with torch.no_grad():  # running statistics far from the defaults, so folding matters
        cnn.bn.running_mean.uniform_(-0.5, 0.5)
        cnn.bn.running_var.uniform_(0.5, 2.0)
        cnn.bn.weight.uniform_(0.5, 1.5)
        cnn.bn.bias.uniform_(-0.2, 0.2)
    cnn.eval()
    img = torch.randn(1, 3, 16, 16)
    m = torch.jit.trace(cnn, img)
    m.save(os.path.join(here, "cnn_bn.pt"))
    expected["cnn_bn"] = {"input": img.flatten().tolist(), "shape": list(img.shape), "output": m(img).flatten().tolist()}

    torch.jit.script(Tuple_()).save(os.path.join(here, "tuple.pt"))
    torch.jit.script(Dict_()).save(os.path.join(here, "dict.pt"))
    with open(os.path.join(here, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")


if __name__ == "__main__":
    main()
