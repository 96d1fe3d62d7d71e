"""Writes convnet.onnx, the small CNN the static quantization tests use.

Run with Debian's python3 (numpy, onnx): /usr/bin/python3 gen_convnet.py
x[1,3,16,16] → Conv+bias → Relu → Conv → residual Add → MaxPool → Conv 1×1 → Clip(0,6)
→ GlobalAveragePool → Flatten → Gemm(10) → Softmax, opset 13, fixed seed.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)


def w(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


inits = [
    w("w1", 8, 3, 3, 3), w("b1", 8, scale=0.1),
    w("w2", 8, 8, 3, 3, scale=0.15), w("b2", 8, scale=0.1),
    w("w3", 16, 8, 1, 1), w("b3", 16, scale=0.1),
    w("wf", 10, 16), w("bf", 10, scale=0.1),
]
nodes = [
    helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
    helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
    helper.make_node("Add", ["r1", "c2"], ["a1"], name="residual"),
    helper.make_node("MaxPool", ["a1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["p1", "w3", "b3"], ["c3"], name="conv3"),
    helper.make_node("Clip", ["c3", "lo", "hi"], ["r3"], name="relu6"),
    helper.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
    helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
    helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
    helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
]
inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
graph = helper.make_graph(
    nodes, "convnet",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="gen_convnet.py")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "convnet.onnx")
