#!/usr/bin/env python3
"""Writes the models of e2e/rpc_test.go.

slow.onnx: a model whose run time its input chooses, for tests of timeouts and queues.

Input "x" float32 [batch, 4]; output "y" float32 [batch, 4] equal to x. The model loops
max(x) times (an ONNX Loop whose body multiplies by 1), so a request whose largest value is
1e7 keeps an inference busy for seconds while one of small values answers at once. ONNX
Runtime checks for termination between loop iterations, so a cancelled run stops early.

fixed_batch.onnx: "x" float32 [1, 4] → "y" = 2x, a model that cannot be batched.

Run with the Debian python3 (numpy and onnx): /usr/bin/python3 e2e/testdata/gen_rpc_models.py
"""
import os

import onnx
from onnx import TensorProto, helper

one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
body = helper.make_graph(
    [
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        helper.make_node("Mul", ["v_in", "one"], ["v_out"]),
    ],
    "spin",
    [
        helper.make_tensor_value_info("i", TensorProto.INT64, []),
        helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["batch", 4]),
    ],
    [
        helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
        helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["batch", 4]),
    ],
    [one],
)
graph = helper.make_graph(
    [
        helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
        helper.make_node("Cast", ["m"], ["n"], to=TensorProto.INT64),
        helper.make_node("Loop", ["n", "", "x"], ["looped"], body=body),
        helper.make_node("Identity", ["looped"], ["y"]),
    ],
    "slow",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="openeas-e2e")
model.ir_version = 8
onnx.checker.check_model(model)
here = os.path.dirname(os.path.abspath(__file__))
onnx.save(model, os.path.join(here, "slow.onnx"))

two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
fixed = helper.make_graph(
    [helper.make_node("Mul", ["x", "two"], ["y"])],
    "fixed_batch",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    [two],
)
fixed_model = helper.make_model(fixed, opset_imports=[helper.make_opsetid("", 13)], producer_name="openeas-e2e")
fixed_model.ir_version = 8
onnx.checker.check_model(fixed_model)
onnx.save(fixed_model, os.path.join(here, "fixed_batch.onnx"))
print("wrote slow.onnx and fixed_batch.onnx in", here)
