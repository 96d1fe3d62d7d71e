#!/usr/bin/python3
"""Generates the auxdata test fixtures. Run with Debian's python3 (numpy 1.24,
torch 1.13) from this directory: /usr/bin/python3 gen.py

The first block is the seed's TensorFlow example verbatim except for the
smaller image shape; the PyTorch block likewise."""
import numpy as np

# --- seed, TensorFlow style (shape (8, 3, 224, 224) shrunk to (2, 3, 4, 4)) ---
calib_data = list()
for i in range(10):
    feed_dict = {
        'image_placeholder:0': np.ones((2, 3, 4, 4), dtype=np.float32),
        'threshold_placeholder:0': np.float32(0.5),
    }
    calib_data.append(feed_dict)
np.save("tf_seed.npy", calib_data)

# --- feed dicts with distinct values and more dtypes ---
feeds = []
for i in range(3):
    feeds.append({
        'x:0': (np.arange(6, dtype=np.float32).reshape(2, 3) + i),
        'ids': np.array([[i, i + 1]], dtype=np.int64),
        'mask': np.array([True, False, i % 2 == 1]),
        'words': np.array(['ab', 'c\u00e9'], dtype=np.str_),
        'scale': np.float64(0.25 * i),
        'n': np.int32(i),
    })
np.save("tf_varied.npy", feeds)

# --- plain numeric arrays ---
np.save("plain_f32.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
np.save("fortran_i16.npy", np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)))
np.save("bigendian_f8.npy", np.arange(4, dtype='>f8'))
np.savez("named.npz", x=np.arange(4, dtype=np.float32).reshape(1, 4), k=np.array(3, dtype=np.int64))
np.savez("positional.npz", np.ones((1, 2), dtype=np.float32), np.zeros((3,), dtype=np.int32))
np.savez_compressed("stacked.npz", x=np.arange(12, dtype=np.float32).reshape(3, 4))

# --- seed, PyTorch style (shape (8, 3, 224, 224) shrunk to (2, 3, 4, 4)) ---
try:
    import torch
except ImportError:
    raise SystemExit("torch not installed: the .pth fixtures were not regenerated")

calib_data = list()
for i in range(10):
    image = torch.ones(2, 3, 4, 4)
    threshold = torch.tensor(0.5)
    feed_tuple = (image, threshold)
    calib_data.append(feed_tuple)
torch.save(calib_data, 'torch_seed.pth')

# Views share one storage: offsets and strides must be applied by the reader.
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
view = base[1:, ::2].t()          # shape (3, 3), offset 6, strides (2, 6)
ids = torch.arange(10, dtype=torch.int64)[3:7]
torch.save([(view, ids), (base[0], torch.tensor([True, False]))], 'torch_views.pth')
