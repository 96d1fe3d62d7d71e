# Generates the small fixture models next to this script (run with Debian's python3,
# which has the onnx package): /usr/bin/python3 make_models.py
#
#   identity_types.onnx  one 1-D input "x_<dtype>" (dim "n") per element type ORT's
#                        Identity takes, each copied to "y_<dtype>"; round-trips every dtype.
#   zero_inputs.onnx     no inputs; outputs "vec" = float32 [42, -1.5] and "count" =
#                        int64 scalar 7 (a 0-dim tensor).
#   strings_case.onnx    "input" string [n] -> "output_lower", "output_upper" (StringNormalizer
#                        with locale C.UTF-8: onnxruntime_go's example_strings.onnx asks for
#                        en_US.UTF-8, which minimal systems lack).
#   scalar_mul.onnx      "x" float32 scalar -> "y" = x * 2 (scalar); also the tiny model
#                        the Run overhead benchmark uses.
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))

TYPES = {
    "float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "int8": TensorProto.INT8,
    "uint16": TensorProto.UINT16, "int16": TensorProto.INT16, "int32": TensorProto.INT32,
    "int64": TensorProto.INT64, "string": TensorProto.STRING, "bool": TensorProto.BOOL,
    "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE, "uint32": TensorProto.UINT32,
    "uint64": TensorProto.UINT64, "bfloat16": TensorProto.BFLOAT16,
}


def save(graph, name):
    model = helper.make_model(graph, producer_name="make_models.py",
                              opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))
    print("saved", name)


def identity_types():
    inputs, outputs, nodes = [], [], []
    for name, t in TYPES.items():
        inputs.append(helper.make_tensor_value_info("x_" + name, t, ["n"]))
        outputs.append(helper.make_tensor_value_info("y_" + name, t, ["n"]))
        nodes.append(helper.make_node("Identity", ["x_" + name], ["y_" + name]))
    save(helper.make_graph(nodes, "identity_types", inputs, outputs), "identity_types.onnx")


def zero_inputs():
    vec = helper.make_tensor("vec_value", TensorProto.FLOAT, [2], [42.0, -1.5])
    count = helper.make_tensor("count_value", TensorProto.INT64, [], [7])
    nodes = [
        helper.make_node("Constant", [], ["vec"], value=vec),
        helper.make_node("Constant", [], ["count"], value=count),
    ]
    outputs = [
        helper.make_tensor_value_info("vec", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("count", TensorProto.INT64, []),
    ]
    save(helper.make_graph(nodes, "zero_inputs", [], outputs), "zero_inputs.onnx")


def strings_case():
    nodes = [
        helper.make_node("StringNormalizer", ["input"], ["output_lower"],
                         case_change_action="LOWER", locale="C.UTF-8"),
        helper.make_node("StringNormalizer", ["input"], ["output_upper"],
                         case_change_action="UPPER", locale="C.UTF-8"),
    ]
    graph = helper.make_graph(nodes, "strings_case",
                              [helper.make_tensor_value_info("input", TensorProto.STRING, ["n"])],
                              [helper.make_tensor_value_info("output_lower", TensorProto.STRING, ["n"]),
                               helper.make_tensor_value_info("output_upper", TensorProto.STRING, ["n"])])
    save(graph, "strings_case.onnx")


def scalar_mul():
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Mul", ["x", "two"], ["y"])]
    graph = helper.make_graph(nodes, "scalar_mul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
                              initializer=[two])
    save(graph, "scalar_mul.onnx")


if __name__ == "__main__":
    identity_types()
    zero_inputs()
    strings_case()
    scalar_mul()
