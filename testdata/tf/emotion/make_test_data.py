# Writes test_data.npy: a TensorFlow-style list of feed dicts keyed by TF tensor names, as
# Blade's test_data expects (run with /usr/bin/python3, which has numpy).
import numpy as np

rng = np.random.default_rng(7)
feeds = [{'input_1:0': rng.random((1, 64, 64, 1), dtype=np.float32)} for _ in range(4)]
np.save('test_data.npy', np.array(feeds, dtype=object), allow_pickle=True)
