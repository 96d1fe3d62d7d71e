package tf

import (
	"fmt"
	"math"
	"slices"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tf/tfpb"
)

type opFunc func(c *converter, n *tfpb.NodeDef) error

// opTable lists every TF op the converter handles.
var opTable map[string]opFunc

func init() {
	opTable = map[string]opFunc{
		"Placeholder": convPlaceholder, "Const": convConst,
		"Identity": convIdentity, "StopGradient": convIdentity, "PreventGradient": convIdentity,
		"Snapshot": convIdentity, "PlaceholderWithDefault": convIdentity, "NoOp": func(*converter, *tfpb.NodeDef) error { return nil },
		"IdentityN": convIdentityN,

		"Conv2D": convConv(false, false), "DepthwiseConv2dNative": convConv(true, false),
		"_FusedConv2D": convConv(false, true), "FusedDepthwiseConv2dNative": convConv(true, true),
		"BiasAdd": convBiasAdd, "BiasAddV1": convBiasAdd,
		"FusedBatchNorm": convBatchNorm, "FusedBatchNormV2": convBatchNorm, "FusedBatchNormV3": convBatchNorm,
		"MaxPool": convPool("MaxPool"), "AvgPool": convPool("AveragePool"),
		"ResizeBilinear": convResize("linear"), "ResizeNearestNeighbor": convResize("nearest"),

		"Relu": unary("Relu"), "Sigmoid": unary("Sigmoid"), "Tanh": unary("Tanh"), "Elu": unary("Elu"),
		"Neg": unary("Neg"), "Sqrt": unary("Sqrt"), "Exp": unary("Exp"), "Log": unary("Log"),
		"Abs": unary("Abs"), "Floor": unary("Floor"), "Ceil": unary("Ceil"), "Round": unary("Round"),
		"Sin": unary("Sin"), "Cos": unary("Cos"), "Reciprocal": unary("Reciprocal"), "Sign": unary("Sign"),
		"LogicalNot": unary("Not"), "Softplus": unary("Softplus"), "Erf": unary("Erf"),
		"Relu6": convRelu6, "LeakyRelu": convLeakyRelu, "Rsqrt": convRsqrt, "Square": convSquare,

		"Add": binop("Add"), "AddV2": binop("Add"), "Sub": binop("Sub"), "Mul": binop("Mul"),
		"RealDiv": binop("Div"), "Div": binop("Div"), "Maximum": binop("Max"), "Minimum": binop("Min"),
		"Pow": binop("Pow"), "SquaredDifference": binop("SquaredDifference"), "Prelu": binop("PRelu"),
		"FloorDiv": binop("FloorDiv"), "FloorMod": binop("FloorMod"),
		"Less": binop("Less"), "LessEqual": binop("LessOrEqual"), "Greater": binop("Greater"),
		"GreaterEqual": binop("GreaterOrEqual"), "Equal": binop("Equal"),
		"LogicalAnd": binop("And"), "LogicalOr": binop("Or"),
		"AddN": convAddN,

		"Softmax": convSoftmax, "MatMul": convMatMul, "_FusedMatMul": convMatMul,
		"BatchMatMul": convBatchMatMul, "BatchMatMulV2": convBatchMatMul, "BatchMatMulV3": convBatchMatMul,

		"Mean": reduce("ReduceMean"), "Sum": reduce("ReduceSum"), "Max": reduce("ReduceMax"),
		"Min": reduce("ReduceMin"), "Prod": reduce("ReduceProd"),
		"ArgMax": convArg("ArgMax"), "ArgMin": convArg("ArgMin"),

		"Reshape": convReshape, "Transpose": convTranspose, "ConcatV2": convConcat,
		"Pack": convPack, "Unpack": convUnpack, "Pad": convPad, "PadV2": convPad, "MirrorPad": convPad,
		"Squeeze": convSqueeze, "ExpandDims": convExpandDims, "StridedSlice": convStridedSlice,
		"Slice": convSlice, "GatherV2": convGather, "Gather": convGather, "GatherNd": convGatherNd,
		"Cast": convCast, "Shape": convShape, "Fill": convFill, "Range": convRange, "Tile": convTile,
		"ZerosLike": convLike(0), "OnesLike": convLike(1), "Select": convSelect, "SelectV2": convSelect,
	}
}

func convPlaceholder(c *converter, n *tfpb.NodeDef) error {
	dt := attrType(n, "dtype")
	ot, err := onnxType(dt)
	if err != nil {
		return err
	}
	shape := attrShape(n, "shape")
	rank := -1
	if a, ok := n.Attr["shape"]; ok && a.GetShape() != nil && !a.GetShape().UnknownRank {
		rank = len(shape)
		if shape == nil {
			shape = []int64{}
		}
	}
	name := c.outName(0)
	c.inputs = append(c.inputs, valueInfo(name, ot, shape, rank))
	c.sig.Inputs = append(c.sig.Inputs, TensorSpec{Name: n.Name + ":0", DType: dt.String(), Shape: shape})
	c.set(0, &value{name: name, dtype: dt, rank: rank})
	return nil
}

func convConst(c *converter, n *tfpb.NodeDef) error {
	a, ok := n.Attr["value"]
	if !ok || a.GetTensor() == nil {
		return fmt.Errorf("Const without a tensor value")
	}
	k, err := fromTensorProto(a.GetTensor())
	if err != nil {
		return err
	}
	c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
	return nil
}

func convIdentity(c *converter, n *tfpb.NodeDef) error {
	v, err := c.in(0)
	if err != nil {
		return err
	}
	c.set(0, v)
	return nil
}

func convIdentityN(c *converter, n *tfpb.NodeDef) error {
	for i := 0; i < c.numInputs(); i++ {
		v, err := c.in(i)
		if err != nil {
			return err
		}
		c.set(i, v)
	}
	return nil
}

// dataFormat reports whether the node works on NCHW tensors (TF's data_format attr).
func dataFormatNCHW(n *tfpb.NodeDef) bool { return attrString(n, "data_format", "NHWC") == "NCHW" }

// spatial picks the H and W entries of a 4-element TF attr (strides, dilations, ksize).
func spatial(v []int64, nchw bool, def int64) []int64 {
	if len(v) != 4 {
		return []int64{def, def}
	}
	if nchw {
		return []int64{v[2], v[3]}
	}
	return []int64{v[1], v[2]}
}

// paddingAttrs translates TF's padding attr.
func paddingAttrs(n *tfpb.NodeDef, nchw bool) ([]*onnxpb.AttributeProto, error) {
	switch p := attrString(n, "padding", "VALID"); p {
	case "SAME":
		return []*onnxpb.AttributeProto{strAttr("auto_pad", "SAME_UPPER")}, nil
	case "VALID":
		return nil, nil
	case "EXPLICIT":
		e := attrInts(n, "explicit_paddings")
		if len(e) != 8 {
			return nil, fmt.Errorf("explicit_paddings: expected 8 values, got %d", len(e))
		}
		h, w := 1, 2
		if nchw {
			h, w = 2, 3
		}
		return []*onnxpb.AttributeProto{ints64("pads", []int64{e[2*h], e[2*w], e[2*h+1], e[2*w+1]})}, nil
	default:
		return nil, fmt.Errorf("padding %q is not supported", p)
	}
}

// layoutIn returns the NCHW ONNX name of the node's 4-D input i, honouring data_format.
func (c *converter) layoutIn(i int, nchwFormat bool) (string, error) {
	v, err := c.in(i)
	if err != nil {
		return "", err
	}
	if nchwFormat {
		return c.nhwc(v) // already NCHW in TF: use it as TF holds it
	}
	return c.nchw(v)
}

// setLayoutOut records a 4-D result computed in NCHW.
func (c *converter) setLayoutOut(name string, dt tfpb.DataType, nchwFormat bool) {
	c.set(0, &value{name: name, nchw: !nchwFormat, dtype: dt, rank: 4})
}

func convConv(depthwise, fused bool) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		nchwFmt := dataFormatNCHW(n)
		x, err := c.layoutIn(0, nchwFmt)
		if err != nil {
			return err
		}
		f, err := c.constIn(1, "the filter")
		if err != nil {
			return err
		}
		if len(f.shape) != 4 {
			return fmt.Errorf("filter of rank %d, expected 4", len(f.shape))
		}
		var w *constant
		group := int64(1)
		if depthwise {
			// [H, W, Cin, M] → [Cin*M, 1, H, W], one group per input channel.
			h, wd, cin, mult := f.shape[0], f.shape[1], f.shape[2], f.shape[3]
			w = f.reshape([]int64{h, wd, cin * mult, 1}).transpose([]int{2, 3, 0, 1})
			group = cin
		} else {
			w = f.transpose([]int{3, 2, 0, 1}) // HWIO → OIHW
		}
		wName, err := c.materialize(w, n.Name+"/weights")
		if err != nil {
			return err
		}
		attrs := []*onnxpb.AttributeProto{
			ints64("strides", spatial(attrInts(n, "strides"), nchwFmt, 1)),
			ints64("dilations", spatial(attrInts(n, "dilations"), nchwFmt, 1)),
			intAttr("group", group),
			ints64("kernel_shape", []int64{f.shape[0], f.shape[1]}),
		}
		pads, err := paddingAttrs(n, nchwFmt)
		if err != nil {
			return err
		}
		attrs = append(attrs, pads...)
		ins := []string{x, wName}
		var ops []string
		if fused {
			ops = attrStrings(n, "fused_ops")
			if len(ops) > 0 && ops[0] == "BiasAdd" {
				bn, err := c.nhwcIn(2) // 1-D [C]: same in both layouts
				if err != nil {
					return err
				}
				ins = append(ins, bn)
				ops = ops[1:]
			} else if len(ops) > 0 && ops[0] == "FusedBatchNorm" {
				return fmt.Errorf("fused_ops FusedBatchNorm is not supported; fold batch norm into the weights")
			}
		}
		out := c.op1("Conv", "conv", ins, attrs...)
		out, err = c.activations(ops, out, 3, true)
		if err != nil {
			return err
		}
		c.setLayoutOut(out, attrType(n, "T"), nchwFmt)
		return nil
	}
}

// activations applies the fused activation list of a fused op to x (argument inputs start
// at argIdx, e.g. Prelu's alpha); nchw says whether x is held in NCHW.
func (c *converter) activations(ops []string, x string, argIdx int, nchw bool) (string, error) {
	for _, op := range ops {
		switch op {
		case "Relu", "Sigmoid", "Tanh", "Elu":
			x = c.op1(op, op, []string{x})
		case "Relu6":
			x = c.op1("Clip", "relu6", []string{x, c.f32Scalar("zero", 0), c.f32Scalar("six", 6)})
		case "LeakyRelu":
			x = c.op1("LeakyRelu", "leakyrelu", []string{x}, floatAttr("alpha", attrFloat(c.cur, "leakyrelu_alpha", 0.2)))
		case "Prelu":
			a, err := c.in(argIdx)
			if err != nil {
				return "", err
			}
			argIdx++
			var an string
			if nchw && a.c != nil {
				an, err = c.nchw(a)
			} else if nchw {
				return "", fmt.Errorf("Prelu alpha must be a constant")
			} else {
				an, err = c.nhwc(a)
			}
			if err != nil {
				return "", err
			}
			x = c.op1("PRelu", "prelu", []string{x, an})
		default:
			return "", fmt.Errorf("fused op %q is not supported", op)
		}
	}
	return x, nil
}

func convBiasAdd(c *converter, n *tfpb.NodeDef) error {
	x, b, err := c.in2()
	if err != nil {
		return err
	}
	if x.nchw || dataFormatNCHW(n) {
		if b.c == nil {
			return fmt.Errorf("the bias must be a constant")
		}
		bk := b.c.reshape([]int64{numel(b.c.shape), 1, 1})
		bn, err := c.materialize(bk, n.Name+"/bias")
		if err != nil {
			return err
		}
		out := c.op1("Add", "add", []string{x.name, bn})
		c.set(0, &value{name: out, nchw: x.nchw, dtype: x.dtype, rank: 4})
		return nil
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	bn, err := c.nhwc(b)
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("Add", []string{xn, bn}, []string{out})
	c.set(0, &value{name: out, dtype: x.dtype, rank: x.rank})
	return nil
}

func convBatchNorm(c *converter, n *tfpb.NodeDef) error {
	if attrBool(n, "is_training") && attrBool(n, "is_training") {
		return fmt.Errorf("is_training=true: only inference batch norm is supported")
	}
	nchwFmt := dataFormatNCHW(n)
	x, err := c.layoutIn(0, nchwFmt)
	if err != nil {
		return err
	}
	ins := []string{x}
	for i := 1; i <= 4; i++ {
		name, err := c.nhwcIn(i)
		if err != nil {
			return err
		}
		ins = append(ins, name)
	}
	out := c.op1("BatchNormalization", "bn", ins, floatAttr("epsilon", attrFloat(n, "epsilon", 1e-4)))
	c.setLayoutOut(out, attrType(n, "T"), nchwFmt)
	return nil
}

func convPool(op string) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		nchwFmt := dataFormatNCHW(n)
		x, err := c.layoutIn(0, nchwFmt)
		if err != nil {
			return err
		}
		attrs := []*onnxpb.AttributeProto{
			ints64("kernel_shape", spatial(attrInts(n, "ksize"), nchwFmt, 1)),
			ints64("strides", spatial(attrInts(n, "strides"), nchwFmt, 1)),
		}
		pads, err := paddingAttrs(n, nchwFmt)
		if err != nil {
			return err
		}
		attrs = append(attrs, pads...)
		out := c.op1(op, "pool", []string{x}, attrs...)
		c.setLayoutOut(out, attrType(n, "T"), nchwFmt)
		return nil
	}
}

func convResize(mode string) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		x, err := c.layoutIn(0, false)
		if err != nil {
			return err
		}
		size, err := c.in(1)
		if err != nil {
			return err
		}
		sz, err := c.asInt64(size, "size")
		if err != nil {
			return err
		}
		shape := c.op1("Shape", "shape", []string{x})
		nc := c.op1("Slice", "nc", []string{shape, c.i64Const("zero", []int64{1}, []int64{0}), c.i64Const("two", []int64{1}, []int64{2})})
		sizes := c.op1("Concat", "sizes", []string{nc, sz}, intAttr("axis", 0))
		coord := "asymmetric"
		switch {
		case attrBool(n, "align_corners"):
			coord = "align_corners"
		case attrBool(n, "half_pixel_centers"):
			coord = "half_pixel"
			if mode == "nearest" {
				coord = "tf_half_pixel_for_nn"
			}
		}
		attrs := []*onnxpb.AttributeProto{strAttr("mode", mode), strAttr("coordinate_transformation_mode", coord)}
		if mode == "nearest" {
			nm := "floor"
			if attrBool(n, "align_corners") {
				nm = "round_prefer_ceil"
			}
			attrs = append(attrs, strAttr("nearest_mode", nm))
		}
		out := c.op1("Resize", "resize", []string{x, "", "", sizes}, attrs...)
		c.setLayoutOut(out, tfpb.DataType_DT_FLOAT, false)
		return nil
	}
}

func unary(op string) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		x, err := c.in(0)
		if err != nil {
			return err
		}
		if x.c != nil {
			if k, ok := foldUnary(n.Op, x.c); ok {
				c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
				return nil
			}
		}
		var attrs []*onnxpb.AttributeProto
		if op == "Elu" {
			attrs = append(attrs, floatAttr("alpha", 1))
		}
		return c.elementwise(op, []*value{x}, x.dtype, attrs...)
	}
}

// elementwise emits op over values that broadcast NumPy-style, keeping NCHW when any 4-D
// input already is and the others can follow (constants are permuted at conversion time).
func (c *converter) elementwise(op string, vs []*value, dt tfpb.DataType, attrs ...*onnxpb.AttributeProto) error {
	nchw := false
	for _, v := range vs {
		if v.nchw {
			nchw = true
		}
	}
	if nchw {
		for _, v := range vs {
			if !v.nchw && v.c == nil && v.rank != 4 && v.rank != 0 {
				nchw = false // a dynamic operand of another rank: compute in TF layout
			}
			if v.c != nil && len(v.c.shape) > 4 {
				nchw = false
			}
		}
	}
	names := make([]string, len(vs))
	rank := -1
	for i, v := range vs {
		var err error
		switch {
		case nchw && v.rank == 0:
			names[i], err = c.nhwc(v)
		case nchw:
			names[i], err = c.nchw(v)
		default:
			names[i], err = c.nhwc(v)
		}
		if err != nil {
			return err
		}
	}
	for _, v := range vs {
		if v.rank < 0 {
			rank = -1
			break
		}
		rank = max(rank, v.rank)
	}
	var out string
	if nchw {
		out = c.outNameNCHW(0)
	} else {
		out = c.outName(0)
	}
	switch op {
	case "SquaredDifference":
		d := c.op1("Sub", "diff", names)
		c.emit("Mul", []string{d, d}, []string{out})
	case "FloorDiv":
		if isFloat(dt) {
			q := c.op1("Div", "div", names)
			c.emit("Floor", []string{q}, []string{out})
		} else { // exact: (a - a mod b) / b, with Python-style mod
			m := c.op1("Mod", "mod", names)
			s := c.op1("Sub", "sub", []string{names[0], m})
			c.emit("Div", []string{s, names[1]}, []string{out})
		}
	case "FloorMod":
		if isFloat(dt) {
			q := c.op1("Div", "div", names)
			f := c.op1("Floor", "floor", []string{q})
			p := c.op1("Mul", "mul", []string{f, names[1]})
			c.emit("Sub", []string{names[0], p}, []string{out})
		} else {
			c.emit("Mod", names, []string{out})
		}
	default:
		c.emit(op, names, []string{out}, attrs...)
	}
	if rank >= 0 && nchw {
		rank = 4
	}
	c.set(0, &value{name: out, nchw: nchw, dtype: dt, rank: rank})
	return nil
}

func isFloat(dt tfpb.DataType) bool {
	return dt == tfpb.DataType_DT_FLOAT || dt == tfpb.DataType_DT_DOUBLE || dt == tfpb.DataType_DT_HALF
}

func binop(op string) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		a, b, err := c.in2()
		if err != nil {
			return err
		}
		if a.c != nil && b.c != nil {
			if k, ok := foldBinary(n.Op, a.c, b.c); ok {
				c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
				return nil
			}
		}
		dt := a.dtype
		switch op {
		case "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal", "And", "Or":
			dt = tfpb.DataType_DT_BOOL
		}
		return c.elementwise(op, []*value{a, b}, dt)
	}
}

func convAddN(c *converter, n *tfpb.NodeDef) error {
	vs, err := c.inN(c.numInputs())
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("AddN has no inputs; expected at least one")
	}
	if len(vs) == 1 {
		c.set(0, vs[0])
		return nil
	}
	return c.elementwise("Sum", vs, vs[0].dtype)
}

func convRelu6(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	return c.elementwise("Clip", []*value{x, {c: scalar(x.dtype, 0), dtype: x.dtype, rank: 0}, {c: scalar(x.dtype, 6), dtype: x.dtype, rank: 0}}, x.dtype)
}

func scalar(dt tfpb.DataType, v float64) *constant {
	return &constant{dtype: dt, shape: []int64{}, v: []float64{v}}
}

func convLeakyRelu(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	return c.elementwise("LeakyRelu", []*value{x}, x.dtype, floatAttr("alpha", attrFloat(n, "alpha", 0.2)))
}

func convRsqrt(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	if err := c.elementwise("Sqrt", []*value{x}, x.dtype); err != nil {
		return err
	}
	s := c.vals[tensorRef{node: n.Name}.String()]
	return c.elementwise("Reciprocal", []*value{s}, x.dtype)
}

func convSquare(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	return c.elementwise("Mul", []*value{x, x}, x.dtype)
}

func convSoftmax(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	if x.nchw {
		out := c.outNameNCHW(0)
		c.emit("Softmax", []string{x.name}, []string{out}, intAttr("axis", 1))
		c.set(0, &value{name: out, nchw: true, dtype: x.dtype, rank: 4})
		return nil
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("Softmax", []string{xn}, []string{out}, intAttr("axis", -1))
	c.set(0, &value{name: out, dtype: x.dtype, rank: x.rank})
	return nil
}

// transposed2D returns an ONNX name for v with its last two axes swapped.
func (c *converter) swapLast2(v *value, suffix string) (string, error) {
	if v.c != nil {
		r := len(v.c.shape)
		if r < 2 {
			return "", fmt.Errorf("cannot transpose a constant of rank %d", r)
		}
		perm := make([]int, r)
		for i := range perm {
			perm[i] = i
		}
		perm[r-1], perm[r-2] = perm[r-2], perm[r-1]
		return c.materialize(v.c.transpose(perm), c.cur.Name+"/"+suffix)
	}
	if v.rank < 2 {
		return "", fmt.Errorf("transposing an operand needs its rank, which is unknown here")
	}
	name, err := c.nhwc(v)
	if err != nil {
		return "", err
	}
	perm := make([]int, v.rank)
	for i := range perm {
		perm[i] = i
	}
	perm[v.rank-1], perm[v.rank-2] = perm[v.rank-2], perm[v.rank-1]
	return c.op1("Transpose", suffix, []string{name}, ints("perm", perm)), nil
}

func (c *converter) matmulOperands(n *tfpb.NodeDef, ta, tb string) (string, string, *value, *value, error) {
	a, b, err := c.in2()
	if err != nil {
		return "", "", nil, nil, err
	}
	an, bn := "", ""
	if attrBool(n, ta) {
		an, err = c.swapLast2(a, "a_t")
	} else {
		an, err = c.nhwc(a)
	}
	if err != nil {
		return "", "", nil, nil, err
	}
	if attrBool(n, tb) {
		bn, err = c.swapLast2(b, "b_t")
	} else {
		bn, err = c.nhwc(b)
	}
	return an, bn, a, b, err
}

func convMatMul(c *converter, n *tfpb.NodeDef) error {
	an, bn, a, _, err := c.matmulOperands(n, "transpose_a", "transpose_b")
	if err != nil {
		return err
	}
	out := c.op1("MatMul", "matmul", []string{an, bn})
	ops := attrStrings(n, "fused_ops")
	if len(ops) > 0 && ops[0] == "BiasAdd" {
		bias, err := c.nhwcIn(2)
		if err != nil {
			return err
		}
		out = c.op1("Add", "bias", []string{out, bias})
		ops = ops[1:]
	}
	out, err = c.activations(ops, out, 3, false)
	if err != nil {
		return err
	}
	c.set(0, &value{name: out, dtype: a.dtype, rank: 2})
	return nil
}

func convBatchMatMul(c *converter, n *tfpb.NodeDef) error {
	an, bn, a, b, err := c.matmulOperands(n, "adj_x", "adj_y")
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("MatMul", []string{an, bn}, []string{out})
	rank := max(a.rank, b.rank)
	if a.rank < 0 || b.rank < 0 {
		rank = -1
	}
	c.set(0, &value{name: out, dtype: a.dtype, rank: rank})
	return nil
}

func reduce(op string) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		x, err := c.in(0)
		if err != nil {
			return err
		}
		ax, err := c.constIn(1, "the reduction axes")
		if err != nil {
			return err
		}
		keep := attrBool(n, "keep_dims")
		axes, err := normAxes(ax.ints(), x.rank)
		if err != nil {
			return err
		}
		slices.Sort(axes)
		useNCHW := false
		var mapped []int64
		if x.nchw {
			for _, a := range axes {
				mapped = append(mapped, int64(axisToNCHW[a]))
			}
			slices.Sort(mapped)
			useNCHW = keep || remainingOrderKept(axes)
		}
		var in string
		if useNCHW {
			in, axes = x.name, mapped
		} else if in, err = c.nhwc(x); err != nil {
			return err
		}
		rank := -1
		if x.rank >= 0 {
			rank = x.rank
			if !keep {
				rank -= len(axes)
			}
		}
		nchwOut := useNCHW && keep
		out := c.outName(0)
		if nchwOut {
			out = c.outNameNCHW(0)
		}
		k := int64(0)
		if keep {
			k = 1
		}
		if len(axes) == 0 { // TF: reducing over no axes is the identity
			c.emit("Identity", []string{in}, []string{out})
		} else if op == "ReduceSum" {
			c.emit(op, []string{in, c.i64Const("axes", []int64{int64(len(axes))}, axes)}, []string{out}, intAttr("keepdims", k))
		} else {
			c.emit(op, []string{in}, []string{out}, ints64("axes", axes), intAttr("keepdims", k))
		}
		c.set(0, &value{name: out, nchw: nchwOut, dtype: x.dtype, rank: rank})
		return nil
	}
}

// remainingOrderKept reports whether reducing NHWC axes without keep_dims leaves the
// remaining axes in the same order whether computed in NHWC or NCHW.
func remainingOrderKept(axes []int64) bool {
	var rest []int
	for a := 0; a < 4; a++ {
		if !slices.Contains(axes, int64(a)) {
			rest = append(rest, axisToNCHW[a])
		}
	}
	return slices.IsSorted(rest)
}

func convArg(op string) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		x, err := c.in(0)
		if err != nil {
			return err
		}
		ax, err := c.constIn(1, "the dimension")
		if err != nil {
			return err
		}
		axes, err := normAxes(ax.ints(), x.rank)
		if err != nil {
			return err
		}
		xn, err := c.nhwc(x)
		if err != nil {
			return err
		}
		outT := attrType(n, "output_type")
		if outT == tfpb.DataType_DT_INVALID {
			outT = tfpb.DataType_DT_INT64
		}
		out := c.outName(0)
		if outT == tfpb.DataType_DT_INT64 {
			c.emit(op, []string{xn}, []string{out}, intAttr("axis", axes[0]), intAttr("keepdims", 0))
		} else {
			a := c.op1(op, "arg", []string{xn}, intAttr("axis", axes[0]), intAttr("keepdims", 0))
			ot, err := onnxType(outT)
			if err != nil {
				return err
			}
			c.emit("Cast", []string{a}, []string{out}, intAttr("to", int64(ot)))
		}
		rank := -1
		if x.rank > 0 {
			rank = x.rank - 1
		}
		c.set(0, &value{name: out, dtype: outT, rank: rank})
		return nil
	}
}

func convReshape(c *converter, n *tfpb.NodeDef) error {
	x, s, err := c.in2()
	if err != nil {
		return err
	}
	if x.c != nil && s.c != nil {
		if k, ok := foldReshape(x.c, s.c.ints()); ok {
			c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
			return nil
		}
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	sn, err := c.asInt64(s, "shape")
	if err != nil {
		return err
	}
	rank := -1
	if s.c != nil {
		rank = int(numel(s.c.shape))
	}
	out := c.outName(0)
	c.emit("Reshape", []string{xn, sn}, []string{out})
	c.set(0, &value{name: out, dtype: x.dtype, rank: rank})
	return nil
}

func convTranspose(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	p, err := c.constIn(1, "the permutation")
	if err != nil {
		return err
	}
	perm := p.ints()
	if x.c != nil {
		pi := make([]int, len(perm))
		for i, v := range perm {
			pi[i] = int(v)
		}
		k := x.c.transpose(pi)
		c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
		return nil
	}
	in := x.name
	if x.nchw && len(perm) == 4 {
		// Compose with the NCHW→NHWC permutation instead of transposing twice.
		composed := make([]int64, 4)
		for i, v := range perm {
			composed[i] = int64(axisToNCHW[v])
		}
		perm = composed
	} else if in, err = c.nhwc(x); err != nil {
		return err
	}
	out := c.outName(0)
	if isIdentityPerm(perm) {
		c.emit("Identity", []string{in}, []string{out})
	} else {
		c.emit("Transpose", []string{in}, []string{out}, ints64("perm", perm))
	}
	c.set(0, &value{name: out, dtype: x.dtype, rank: len(perm)})
	return nil
}

func isIdentityPerm(p []int64) bool {
	for i, v := range p {
		if int64(i) != v {
			return false
		}
	}
	return true
}

func convConcat(c *converter, n *tfpb.NodeDef) error {
	num := c.numInputs() - 1
	ax, err := c.constIn(num, "the axis")
	if err != nil {
		return err
	}
	var vs []*value
	allConst, allNCHW, rank := true, true, -1
	for i := 0; i < num; i++ {
		v, err := c.in(i)
		if err != nil {
			return err
		}
		vs = append(vs, v)
		if v.c == nil {
			allConst = false
			if !v.nchw {
				allNCHW = false
			}
		} else if len(v.c.shape) != 4 {
			allNCHW = false
		}
		if v.rank >= 0 {
			rank = v.rank
		}
	}
	axis := ax.ints()[0]
	if axis < 0 && rank >= 0 {
		axis += int64(rank)
	}
	if allConst {
		if k, ok := foldConcat(vs, int(axis)); ok {
			c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
			return nil
		}
	}
	useNCHW := allNCHW && !allConst && rank == 4
	names := make([]string, len(vs))
	for i, v := range vs {
		if useNCHW {
			names[i], err = c.nchw(v)
		} else {
			names[i], err = c.nhwc(v)
		}
		if err != nil {
			return err
		}
	}
	out := c.outName(0)
	if useNCHW {
		out = c.outNameNCHW(0)
		axis = int64(axisToNCHW[axis])
	}
	c.emit("Concat", names, []string{out}, intAttr("axis", axis))
	c.set(0, &value{name: out, nchw: useNCHW, dtype: vs[0].dtype, rank: rank})
	return nil
}

func convPack(c *converter, n *tfpb.NodeDef) error {
	axis := attrInt(n, "axis", 0)
	var vs []*value
	allConst := true
	for i := 0; i < c.numInputs(); i++ {
		v, err := c.in(i)
		if err != nil {
			return err
		}
		vs = append(vs, v)
		if v.c == nil {
			allConst = false
		}
	}
	rank := vs[0].rank
	if axis < 0 && rank >= 0 {
		axis += int64(rank) + 1
	}
	if allConst {
		var exp []*value
		for _, v := range vs {
			sh := slices.Insert(slices.Clone(v.c.shape), int(axis), 1)
			exp = append(exp, &value{c: v.c.reshape(sh)})
		}
		if k, ok := foldConcat(exp, int(axis)); ok {
			c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
			return nil
		}
	}
	ax := c.i64Const("axis", []int64{1}, []int64{axis})
	names := make([]string, len(vs))
	for i, v := range vs {
		x, err := c.nhwc(v)
		if err != nil {
			return err
		}
		names[i] = c.op1("Unsqueeze", "unsqueeze", []string{x, ax})
	}
	out := c.outName(0)
	c.emit("Concat", names, []string{out}, intAttr("axis", axis))
	if rank >= 0 {
		rank++
	}
	c.set(0, &value{name: out, dtype: vs[0].dtype, rank: rank})
	return nil
}

func convUnpack(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	num := attrInt(n, "num", 0)
	axes, err := normAxes([]int64{attrInt(n, "axis", 0)}, x.rank)
	if err != nil {
		return err
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	parts := make([]string, num)
	for i := range parts {
		parts[i] = c.tmp(fmt.Sprintf("part%d", i))
	}
	c.emit("Split", []string{xn, c.i64Const("split", []int64{num}, slices.Repeat([]int64{1}, int(num)))}, parts, intAttr("axis", axes[0]))
	ax := c.i64Const("axes", []int64{1}, axes)
	rank := -1
	if x.rank > 0 {
		rank = x.rank - 1
	}
	for i, p := range parts {
		out := c.outName(i)
		c.emit("Squeeze", []string{p, ax}, []string{out})
		c.set(i, &value{name: out, dtype: x.dtype, rank: rank})
	}
	return nil
}

func convPad(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	p, err := c.constIn(1, "the paddings")
	if err != nil {
		return err
	}
	r := len(p.v) / 2
	pads := p.ints()
	mode := "constant"
	if n.Op == "MirrorPad" {
		mode = map[string]string{"REFLECT": "reflect", "SYMMETRIC": "edge"}[attrString(n, "mode", "REFLECT")]
		if attrString(n, "mode", "REFLECT") == "SYMMETRIC" {
			return fmt.Errorf("MirrorPad mode SYMMETRIC is not supported")
		}
	}
	useNCHW := x.nchw && r == 4
	onnxPads := make([]int64, 2*r)
	for i := 0; i < r; i++ {
		j := i
		if useNCHW {
			j = axisToNCHW[i]
		}
		onnxPads[j], onnxPads[r+j] = pads[2*i], pads[2*i+1]
	}
	in := x.name
	if !useNCHW {
		if in, err = c.nhwc(x); err != nil {
			return err
		}
	}
	ins := []string{in, c.i64Const("pads", []int64{int64(2 * r)}, onnxPads)}
	if n.Op == "PadV2" {
		cn, err := c.nhwcIn(2)
		if err != nil {
			return err
		}
		ins = append(ins, cn)
	}
	out := c.outName(0)
	if useNCHW {
		out = c.outNameNCHW(0)
	}
	c.emit("Pad", ins, []string{out}, strAttr("mode", mode))
	c.set(0, &value{name: out, nchw: useNCHW, dtype: x.dtype, rank: r})
	return nil
}

func convSqueeze(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	dims, err := normAxes(attrInts(n, "squeeze_dims"), x.rank)
	if err != nil {
		return err
	}
	if x.c != nil && len(dims) > 0 {
		var sh []int64
		for i, d := range x.c.shape {
			if !slices.Contains(dims, int64(i)) {
				sh = append(sh, d)
			}
		}
		k := x.c.reshape(sh)
		c.set(0, &value{c: k, dtype: k.dtype, rank: len(sh)})
		return nil
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	out := c.outName(0)
	ins := []string{xn}
	rank := -1
	if len(dims) > 0 {
		ins = append(ins, c.i64Const("axes", []int64{int64(len(dims))}, dims))
		if x.rank >= 0 {
			rank = x.rank - len(dims)
		}
	}
	c.emit("Squeeze", ins, []string{out})
	c.set(0, &value{name: out, dtype: x.dtype, rank: rank})
	return nil
}

func convExpandDims(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	d, err := c.constIn(1, "the dimension")
	if err != nil {
		return err
	}
	dim := d.ints()[0]
	if dim < 0 && x.rank >= 0 {
		dim += int64(x.rank) + 1
	}
	if x.c != nil {
		k := x.c.reshape(slices.Insert(slices.Clone(x.c.shape), int(dim), 1))
		c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
		return nil
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("Unsqueeze", []string{xn, c.i64Const("axes", []int64{1}, []int64{dim})}, []string{out})
	rank := -1
	if x.rank >= 0 {
		rank = x.rank + 1
	}
	c.set(0, &value{name: out, dtype: x.dtype, rank: rank})
	return nil
}

func convStridedSlice(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	bk, err := c.constIn(1, "begin")
	if err != nil {
		return err
	}
	ek, err := c.constIn(2, "end")
	if err != nil {
		return err
	}
	sk, err := c.constIn(3, "strides")
	if err != nil {
		return err
	}
	begin, end, stride := bk.ints(), ek.ints(), sk.ints()
	bm, em := attrInt(n, "begin_mask", 0), attrInt(n, "end_mask", 0)
	ellipsis, newAxis, shrink := attrInt(n, "ellipsis_mask", 0), attrInt(n, "new_axis_mask", 0), attrInt(n, "shrink_axis_mask", 0)
	// Expand the ellipsis into full slices (needs the rank).
	type spec struct {
		b, e, s          int64
		bAll, eAll       bool
		newAxis, shrinks bool
	}
	var specs []spec
	for i := range begin {
		bit := int64(1) << i
		if ellipsis&bit != 0 {
			if x.rank < 0 {
				return fmt.Errorf("ellipsis_mask on a tensor of unknown rank")
			}
			used := 0
			for j := range begin {
				if j != i && newAxis&(1<<j) == 0 {
					used++
				}
			}
			for k := 0; k < x.rank-used; k++ {
				specs = append(specs, spec{s: 1, bAll: true, eAll: true})
			}
			continue
		}
		specs = append(specs, spec{b: begin[i], e: end[i], s: stride[i], bAll: bm&bit != 0, eAll: em&bit != 0,
			newAxis: newAxis&bit != 0, shrinks: shrink&bit != 0})
	}
	var starts, ends, axes, steps, squeeze, unsq []int64
	inAxis, outAxis := int64(0), int64(0)
	for _, s := range specs {
		if s.newAxis {
			unsq = append(unsq, outAxis)
			outAxis++
			continue
		}
		if s.shrinks {
			e := s.b + 1
			if e == 0 {
				e = math.MaxInt64
			}
			starts, ends, axes, steps = append(starts, s.b), append(ends, e), append(axes, inAxis), append(steps, 1)
			squeeze = append(squeeze, inAxis)
			inAxis++
			continue
		}
		b, e := s.b, s.e
		if s.bAll {
			b = 0
			if s.s < 0 {
				b = math.MaxInt64
			}
		}
		if s.eAll {
			e = math.MaxInt64
			if s.s < 0 {
				e = math.MinInt64
			}
		}
		if !(s.bAll && s.eAll && s.s == 1) {
			starts, ends, axes, steps = append(starts, b), append(ends, e), append(axes, inAxis), append(steps, s.s)
		}
		inAxis++
		outAxis++
	}
	if x.c != nil && len(x.c.shape) == 1 && len(unsq) == 0 && len(axes) <= 1 {
		if k, ok := foldSlice1D(x.c, starts, ends, steps, len(squeeze) > 0); ok {
			c.set(0, &value{c: k, dtype: k.dtype, rank: len(k.shape)})
			return nil
		}
	}
	cur, err := c.nhwc(x)
	if err != nil {
		return err
	}
	if len(axes) > 0 {
		l := []int64{int64(len(axes))}
		cur = c.op1("Slice", "slice", []string{cur, c.i64Const("starts", l, starts), c.i64Const("ends", l, ends),
			c.i64Const("axes", l, axes), c.i64Const("steps", l, steps)})
	}
	if len(squeeze) > 0 {
		cur = c.op1("Squeeze", "squeeze", []string{cur, c.i64Const("squeeze_axes", []int64{int64(len(squeeze))}, squeeze)})
	}
	if len(unsq) > 0 {
		cur = c.op1("Unsqueeze", "unsqueeze", []string{cur, c.i64Const("unsqueeze_axes", []int64{int64(len(unsq))}, unsq)})
	}
	out := c.outName(0)
	c.emit("Identity", []string{cur}, []string{out})
	rank := -1
	if x.rank >= 0 {
		rank = x.rank - len(squeeze) + len(unsq)
	}
	c.set(0, &value{name: out, dtype: x.dtype, rank: rank})
	return nil
}

func convSlice(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	bk, err := c.constIn(1, "begin")
	if err != nil {
		return err
	}
	sk, err := c.constIn(2, "size")
	if err != nil {
		return err
	}
	begin, size := bk.ints(), sk.ints()
	ends := make([]int64, len(begin))
	axes := make([]int64, len(begin))
	for i := range begin {
		axes[i] = int64(i)
		if size[i] < 0 {
			ends[i] = math.MaxInt64
		} else {
			ends[i] = begin[i] + size[i]
		}
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	l := []int64{int64(len(begin))}
	out := c.outName(0)
	c.emit("Slice", []string{xn, c.i64Const("starts", l, begin), c.i64Const("ends", l, ends), c.i64Const("axes", l, axes)}, []string{out})
	c.set(0, &value{name: out, dtype: x.dtype, rank: x.rank})
	return nil
}

func convGather(c *converter, n *tfpb.NodeDef) error {
	p, idx, err := c.in2()
	if err != nil {
		return err
	}
	axis := int64(0)
	if n.Op == "GatherV2" {
		ak, err := c.constIn(2, "the axis")
		if err != nil {
			return err
		}
		axis = ak.ints()[0]
		if bd := attrInt(n, "batch_dims", 0); bd != 0 {
			return fmt.Errorf("batch_dims=%d is not supported", bd)
		}
	}
	pn, err := c.nhwc(p)
	if err != nil {
		return err
	}
	in, err := c.nhwc(idx)
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("Gather", []string{pn, in}, []string{out}, intAttr("axis", axis))
	rank := -1
	if p.rank >= 0 && idx.rank >= 0 {
		rank = p.rank - 1 + idx.rank
	}
	c.set(0, &value{name: out, dtype: p.dtype, rank: rank})
	return nil
}

func convGatherNd(c *converter, n *tfpb.NodeDef) error {
	p, idx, err := c.in2()
	if err != nil {
		return err
	}
	pn, err := c.nhwc(p)
	if err != nil {
		return err
	}
	in, err := c.asInt64(idx, "indices")
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("GatherND", []string{pn, in}, []string{out})
	c.set(0, &value{name: out, dtype: p.dtype, rank: -1})
	return nil
}

func convCast(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	to := attrType(n, "DstT")
	if x.c != nil {
		k := &constant{dtype: to, shape: x.c.shape, v: castValues(x.c.v, to)}
		c.set(0, &value{c: k, dtype: to, rank: len(k.shape)})
		return nil
	}
	ot, err := onnxType(to)
	if err != nil {
		return err
	}
	return c.elementwise("Cast", []*value{x}, to, intAttr("to", int64(ot)))
}

func convShape(c *converter, n *tfpb.NodeDef) error {
	x, err := c.in(0)
	if err != nil {
		return err
	}
	outT := attrType(n, "out_type")
	if outT == tfpb.DataType_DT_INVALID {
		outT = tfpb.DataType_DT_INT32
	}
	if x.c != nil {
		v := make([]float64, len(x.c.shape))
		for i, d := range x.c.shape {
			v[i] = float64(d)
		}
		c.set(0, &value{c: &constant{dtype: outT, shape: []int64{int64(len(v))}, v: v}, dtype: outT, rank: 1})
		return nil
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	out := c.outName(0)
	s := c.op1("Shape", "shape", []string{xn})
	if outT == tfpb.DataType_DT_INT64 {
		c.emit("Identity", []string{s}, []string{out})
	} else {
		c.emit("Cast", []string{s}, []string{out}, intAttr("to", int64(onnxpb.TensorProto_INT32)))
	}
	c.set(0, &value{name: out, dtype: outT, rank: 1})
	return nil
}

func convFill(c *converter, n *tfpb.NodeDef) error {
	d, v, err := c.in2()
	if err != nil {
		return err
	}
	if d.c != nil && v.c != nil && numel(d.c.shape) <= 8 {
		shape := d.c.ints()
		if numel(shape) <= 1<<16 {
			k := &constant{dtype: v.c.dtype, shape: shape, v: slices.Repeat([]float64{v.c.v[0]}, int(numel(shape)))}
			c.set(0, &value{c: k, dtype: k.dtype, rank: len(shape)})
			return nil
		}
	}
	dn, err := c.asInt64(d, "dims")
	if err != nil {
		return err
	}
	vn, err := c.nhwc(v)
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("Expand", []string{vn, dn}, []string{out})
	rank := -1
	if d.c != nil {
		rank = int(numel(d.c.shape))
	}
	c.set(0, &value{name: out, dtype: v.dtype, rank: rank})
	return nil
}

func convRange(c *converter, n *tfpb.NodeDef) error {
	vs, err := c.inN(3)
	if err != nil {
		return err
	}
	dt := attrType(n, "Tidx")
	if dt == tfpb.DataType_DT_INVALID {
		dt = vs[0].dtype
	}
	if vs[0].c != nil && vs[1].c != nil && vs[2].c != nil {
		start, limit, delta := vs[0].c.v[0], vs[1].c.v[0], vs[2].c.v[0]
		if delta != 0 {
			var v []float64
			for x := start; (delta > 0 && x < limit) || (delta < 0 && x > limit); x += delta {
				v = append(v, x)
				if len(v) > 1<<20 {
					break
				}
			}
			k := &constant{dtype: dt, shape: []int64{int64(len(v))}, v: v}
			c.set(0, &value{c: k, dtype: dt, rank: 1})
			return nil
		}
	}
	names := make([]string, 3)
	for i, v := range vs {
		var err error
		if names[i], err = c.nhwc(v); err != nil {
			return err
		}
	}
	out := c.outName(0)
	c.emit("Range", names, []string{out})
	c.set(0, &value{name: out, dtype: dt, rank: 1})
	return nil
}

func convTile(c *converter, n *tfpb.NodeDef) error {
	x, m, err := c.in2()
	if err != nil {
		return err
	}
	xn, err := c.nhwc(x)
	if err != nil {
		return err
	}
	mn, err := c.asInt64(m, "multiples")
	if err != nil {
		return err
	}
	out := c.outName(0)
	c.emit("Tile", []string{xn, mn}, []string{out})
	c.set(0, &value{name: out, dtype: x.dtype, rank: x.rank})
	return nil
}

func convLike(fill float64) opFunc {
	return func(c *converter, n *tfpb.NodeDef) error {
		x, err := c.in(0)
		if err != nil {
			return err
		}
		k := scalar(x.dtype, fill)
		return c.elementwiseExpand(x, k)
	}
}

// elementwiseExpand emits Expand(k, Shape(x)) in x's layout.
func (c *converter) elementwiseExpand(x *value, k *constant) error {
	in := x.name
	var err error
	if !x.nchw {
		if in, err = c.nhwc(x); err != nil {
			return err
		}
	}
	kn, err := c.materialize(k, c.cur.Name+"/fill")
	if err != nil {
		return err
	}
	s := c.op1("Shape", "shape", []string{in})
	out := c.outName(0)
	if x.nchw {
		out = c.outNameNCHW(0)
	}
	c.emit("Expand", []string{kn, s}, []string{out})
	c.set(0, &value{name: out, nchw: x.nchw, dtype: x.dtype, rank: x.rank})
	return nil
}

func convSelect(c *converter, n *tfpb.NodeDef) error {
	vs, err := c.inN(3)
	if err != nil {
		return err
	}
	if n.Op == "Select" && vs[0].rank == 1 && vs[1].rank > 1 {
		return fmt.Errorf("Select with a vector condition on higher-rank values is not supported")
	}
	return c.elementwise("Where", vs, vs[1].dtype)
}
