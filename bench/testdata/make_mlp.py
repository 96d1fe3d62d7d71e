#!/usr/bin/python3
"""Writes mlp.onnx: a tiny MLP used by the overhead benchmark and the metrics test.

x float32[batch, 64] -> Gemm 64x256 -> Relu -> Gemm 256x256 -> Relu -> Gemm 256x10 -> y float32[batch, 10]
The batch dimension is dynamic. Weights are seeded, so the file is reproducible.
Run with Debian's python3 (numpy + onnx): /usr/bin/python3 bench/testdata/make_mlp.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(20240601)
sizes = [64, 256, 256, 10]
inits, nodes = [], []
prev = "x"
for i in range(len(sizes) - 1):
    w = (rng.standard_normal((sizes[i], sizes[i + 1])) / np.sqrt(sizes[i])).astype(np.float32)
    b = (rng.standard_normal(sizes[i + 1]) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
    out = "y" if i == len(sizes) - 2 else f"h{i}"
    gemm_out = out if out == "y" else f"g{i}"
    nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [gemm_out], name=f"gemm{i}"))
    if out != "y":
        nodes.append(helper.make_node("Relu", [gemm_out], [out], name=f"relu{i}"))
    prev = out

graph = helper.make_graph(
    nodes, "mlp",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
    initializer=inits,
)
model = helper.make_model(graph, producer_name="openeas-bench", opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp.onnx"))
