#!/usr/bin/python3
"""Trains the small Fashion-MNIST CNN that Blade's benchmark scores, once, on 2 CPU cores.

Run with Debian's python3 (not the pyenv one first on PATH):
    apt-get install -y python3-torch python3-onnx dataset-fashion-mnist
    /usr/bin/python3 testdata/fashion-mnist/train.py

Writes, next to this script:
    model.onnx        opset 13, input "image" float32 [batch,1,28,28] (pixels / 255),
                      output "logits" float32 [batch,10]; dynamic batch
    calibration.npy   200 training images as a list of feed dicts {"image": [1,1,28,28]}
                      (Blade's TensorFlow-style aux format, np.save of a list)
    test_data.npy     the first 32 test images in the same format (for blade --test-data)
The evaluation on all 10,000 test images is Go code (internal/blade/conformance/fmnist).
Everything is seeded. Two epochs (about 90% test accuracy) take about 2 CPU-minutes; on a
busy shared 2-core machine that was 15-25 minutes of wall time.
"""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
EPOCHS = int(os.environ.get("EPOCHS", "2"))


def read_idx(stem):
    """Reads an idx-ubyte file (plain or .gz) into a numpy array."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(DATA, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                b = f.read()
            ndim = b[3]
            dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    sys.exit(f"{stem}: not found in {DATA} (apt-get install dataset-fashion-mnist)")


class Net(nn.Module):
    """Two conv blocks (Conv+BatchNorm+ReLU+MaxPool), dropout, two linear layers."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.head(self.features(x))


def main():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    xtr = read_idx("train-images-idx3-ubyte").astype(np.float32)[:, None] / 255.0
    ytr = read_idx("train-labels-idx1-ubyte").astype(np.int64)
    xte = read_idx("t10k-images-idx3-ubyte").astype(np.float32)[:, None] / 255.0
    yte = read_idx("t10k-labels-idx1-ubyte").astype(np.int64)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    start = time.time()
    for epoch in range(EPOCHS):
        net.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(torch.from_numpy(xte[j:j + 1000])).argmax(1) for j in range(0, len(xte), 1000)])
        acc = (pred.numpy() == yte).mean()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy {100 * acc:.2f}% ({time.time() - start:.0f} s)", flush=True)

    net.eval()
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), os.path.join(HERE, "model.onnx"), opset_version=13,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    rng = np.random.default_rng(0)
    calib = [{"image": xtr[i:i + 1]} for i in sorted(rng.choice(len(xtr), 200, replace=False))]
    np.save(os.path.join(HERE, "calibration.npy"), np.array(calib, dtype=object), allow_pickle=True)
    test = [{"image": xte[i:i + 1]} for i in range(32)]
    np.save(os.path.join(HERE, "test_data.npy"), np.array(test, dtype=object), allow_pickle=True)
    print(f"wrote model.onnx, calibration.npy, test_data.npy; final test accuracy {100 * acc:.2f}%")


if __name__ == "__main__":
    main()
