package tf

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tf/tfpb"
)

// Opset is the ONNX opset the converter emits.
const Opset = 13

// Options tune a conversion.
type Options struct {
	// Outputs are the TF tensors the model must produce ("logits", "logits:0"); the graph is
	// pruned to what they need. Empty: every tensor no node consumes.
	Outputs []string
}

// Result is a converted model.
type Result struct {
	Model      *onnxpb.ModelProto
	Signature  Signature
	TFNodes    int // nodes of the pruned TF graph
	ONNXNodes  int
	Transposes int // Transpose nodes the layout conversion left in the ONNX graph
}

// value is what a TF tensor became in the ONNX graph.
type value struct {
	name  string        // ONNX value name ("" for a constant not yet materialized)
	nchw  bool          // the ONNX value holds the NCHW permutation of a 4-D NHWC TF tensor
	c     *constant     // known at conversion time (TF layout)
	dtype tfpb.DataType // TF dtype
	rank  int           // -1 unknown
	alt   string        // cached other-layout twin (NHWC for nchw values, NCHW otherwise)
}

type converter struct {
	ctx    context.Context
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	vals   map[string]*value // by TF tensor "node:k"
	names  map[string]bool
	inputs []*onnxpb.ValueInfoProto
	sig    Signature
	cur    *tfpb.NodeDef
}

// Convert turns a binary frozen GraphDef into an ONNX model.
func Convert(ctx context.Context, graphDef []byte, opts Options) (*Result, error) {
	g, err := ParseGraphDef(graphDef)
	if err != nil {
		return nil, err
	}
	return ConvertGraph(ctx, g, opts)
}

// ConvertGraph converts a decoded GraphDef.
func ConvertGraph(ctx context.Context, g *tfpb.GraphDef, opts Options) (*Result, error) {
	byName := make(map[string]*tfpb.NodeDef, len(g.Node))
	for _, n := range g.Node {
		if _, dup := byName[n.Name]; dup {
			return nil, fmt.Errorf("the graph defines node %q twice", n.Name)
		}
		byName[n.Name] = n
	}
	var outs []tensorRef
	for _, o := range opts.Outputs {
		ref, control, err := parseRef(strings.TrimSpace(o))
		if err != nil || control || ref.node == "" {
			return nil, fmt.Errorf("outputs: %q is not a tensor name (expected node or node:index)", o)
		}
		if _, ok := byName[ref.node]; !ok {
			return nil, fmt.Errorf("outputs: the graph has no node %q (asked for %q)", ref.node, o)
		}
		outs = append(outs, ref)
	}
	if len(outs) == 0 {
		outs = defaultOutputs(g)
		if len(outs) == 0 {
			return nil, fmt.Errorf("the graph has no output tensors (every node is consumed or constant)")
		}
	}
	order, err := prune(byName, outs)
	if err != nil {
		return nil, err
	}
	unsupported := map[string][]string{}
	for _, n := range order {
		if _, ok := opTable[n.Op]; !ok || controlFlowOps[n.Op] {
			unsupported[n.Op] = append(unsupported[n.Op], n.Name)
		}
	}
	if len(unsupported) > 0 {
		for _, v := range unsupported {
			sort.Strings(v)
		}
		return nil, &UnsupportedError{Ops: unsupported}
	}

	c := &converter{ctx: ctx, vals: map[string]*value{}, names: map[string]bool{}}
	for _, n := range order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.cur = n
		if err := convertNode(c, n); err != nil {
			return nil, fmt.Errorf("convert node %q (%s): %w", n.Name, n.Op, err)
		}
	}

	// Outputs carry their TF names, in NHWC as TF computes them.
	var outInfos []*onnxpb.ValueInfoProto
	seen := map[string]bool{}
	for _, o := range outs {
		want := o.onnxName()
		if seen[want] {
			continue
		}
		seen[want] = true
		v, err := c.get(o)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o, err)
		}
		name, err := c.nhwc(v)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o, err)
		}
		if name != want {
			c.emit("Identity", []string{name}, []string{want})
		}
		ot, err := onnxType(v.dtype)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o, err)
		}
		outInfos = append(outInfos, valueInfo(want, ot, nil, v.rank))
		c.sig.Outputs = append(c.sig.Outputs, o.String())
	}

	m := &onnxpb.ModelProto{
		IrVersion:       ptr(int64(8)),
		ProducerName:    ptr("openeas-tf2onnx"),
		ProducerVersion: ptr(ConverterVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(Opset))}},
		Graph: &onnxpb.GraphProto{
			Name:        ptr("tensorflow"),
			Node:        c.nodes,
			Initializer: c.inits,
			Input:       c.inputs,
			Output:      outInfos,
		},
	}
	gr := onnx.ModelGraph(m)
	gr.RemoveDeadNodes()
	gr.RemoveUnusedInitializers()
	if err := gr.TopoSort(); err != nil {
		return nil, fmt.Errorf("converted graph: %w", err)
	}
	res := &Result{Model: m, Signature: c.sig, TFNodes: len(order), ONNXNodes: len(m.Graph.Node)}
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "Transpose" {
			res.Transposes++
		}
	}
	return res, nil
}

// convertNode runs n's converter. The graph is a user's upload converted inside easd, so a
// converter bug that a malformed node triggers becomes this node's error, not a crash.
func convertNode(c *converter, n *tfpb.NodeDef) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed node (converter failed: %v)", r)
		}
	}()
	return opTable[n.Op](c, n)
}

func ptr[T any](v T) *T { return &v }

func valueInfo(name string, elem onnxpb.TensorProto_DataType, shape []int64, rank int) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: ptr(int32(elem))}
	if shape != nil {
		tt.Shape = &onnxpb.TensorShapeProto{}
		for i, d := range shape {
			dim := &onnxpb.TensorShapeProto_Dimension{}
			if d >= 0 {
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
			} else {
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: fmt.Sprintf("%s_dim%d", name, i)}
			}
			tt.Shape.Dim = append(tt.Shape.Dim, dim)
		}
	}
	return &onnxpb.ValueInfoProto{Name: &name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
}

// unique returns base, or base with a numeric suffix, unused as a value name so far.
func (c *converter) unique(base string) string {
	name := base
	for i := 1; c.names[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	c.names[name] = true
	return name
}

// tmp names an intermediate value of the current node.
func (c *converter) tmp(suffix string) string { return c.unique(c.cur.Name + "/" + suffix) }

// emit appends an ONNX node.
func (c *converter) emit(op string, in, out []string, attrs ...*onnxpb.AttributeProto) {
	for _, o := range out {
		c.names[o] = true
	}
	c.nodes = append(c.nodes, &onnxpb.NodeProto{
		OpType: ptr(op), Name: ptr(c.unique("node:" + out[0])), Input: in, Output: out, Attribute: attrs,
	})
}

// op1 emits a single-output node on a fresh value name and returns it.
func (c *converter) op1(op, suffix string, in []string, attrs ...*onnxpb.AttributeProto) string {
	out := c.tmp(suffix)
	c.emit(op, in, []string{out}, attrs...)
	return out
}

// set records the ONNX value of the current node's output k.
func (c *converter) set(k int, v *value) {
	c.vals[tensorRef{node: c.cur.Name, idx: k}.String()] = v
}

// outName is the ONNX name for output k of the current node in NHWC (TF) layout.
func (c *converter) outName(k int) string {
	return c.unique(tensorRef{node: c.cur.Name, idx: k}.onnxName())
}

// outNameNCHW is the ONNX name for output k of the current node held in NCHW.
func (c *converter) outNameNCHW(k int) string {
	return c.unique(tensorRef{node: c.cur.Name, idx: k}.onnxName() + "/nchw")
}

func (c *converter) get(ref tensorRef) (*value, error) {
	v, ok := c.vals[ref.String()]
	if !ok {
		return nil, fmt.Errorf("tensor %s is not produced by its node", ref)
	}
	return v, nil
}

// in returns the value of the current node's data input i.
func (c *converter) in(i int) (*value, error) {
	k := 0
	for _, s := range c.cur.Input {
		ref, control, err := parseRef(s)
		if err != nil {
			return nil, err
		}
		if control {
			continue
		}
		if k == i {
			return c.get(ref)
		}
		k++
	}
	return nil, fmt.Errorf("input %d is missing", i)
}

// in2 returns the values of the current node's data inputs 0 and 1.
func (c *converter) in2() (*value, *value, error) {
	vs, err := c.inN(2)
	if err != nil {
		return nil, nil, err
	}
	return vs[0], vs[1], nil
}

// inN returns the values of the current node's first n data inputs.
func (c *converter) inN(n int) ([]*value, error) {
	var vs []*value
	for i := 0; i < n; i++ {
		v, err := c.in(i)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func (c *converter) numInputs() int {
	k := 0
	for _, s := range c.cur.Input {
		if !strings.HasPrefix(s, "^") {
			k++
		}
	}
	return k
}

// constIn returns input i as a constant, or an error naming what must be constant.
func (c *converter) constIn(i int, what string) (*constant, error) {
	v, err := c.in(i)
	if err != nil {
		return nil, err
	}
	if v.c == nil {
		return nil, fmt.Errorf("%s (input %d) must be a constant in the frozen graph", what, i)
	}
	return v.c, nil
}

// materialize gives a constant an initializer and returns its name.
func (c *converter) materialize(k *constant, base string) (string, error) {
	name := c.unique(base)
	t, err := k.tensorProto(name)
	if err != nil {
		return "", err
	}
	c.inits = append(c.inits, t)
	return name, nil
}

// nhwc returns an ONNX name holding v in TF layout.
func (c *converter) nhwc(v *value) (string, error) {
	if v.c != nil && v.name == "" {
		name, err := c.materialize(v.c, c.cur.Name+"/const")
		if err != nil {
			return "", err
		}
		v.name = name
	}
	if !v.nchw {
		return v.name, nil
	}
	if v.alt == "" {
		v.alt = c.unique(strings.TrimSuffix(v.name, "/nchw"))
		c.emit("Transpose", []string{v.name}, []string{v.alt}, ints("perm", nchwToNHWC))
	}
	return v.alt, nil
}

// nhwcIn returns an ONNX name holding the current node's data input i in TF layout.
func (c *converter) nhwcIn(i int) (string, error) {
	v, err := c.in(i)
	if err != nil {
		return "", err
	}
	return c.nhwc(v)
}

// nchw returns an ONNX name holding the 4-D v in NCHW: a Transpose at most once per value,
// constants transposed at conversion time.
func (c *converter) nchw(v *value) (string, error) {
	if v.nchw {
		return v.name, nil
	}
	if v.alt != "" {
		return v.alt, nil
	}
	if v.c != nil {
		k, ok := v.c.toNCHW()
		if !ok {
			return "", fmt.Errorf("constant of rank %d cannot be used in NCHW", len(v.c.shape))
		}
		name, err := c.materialize(k, c.cur.Name+"/const_nchw")
		if err != nil {
			return "", err
		}
		v.alt = name
		return name, nil
	}
	if v.rank >= 0 && v.rank != 4 {
		return "", fmt.Errorf("expected a 4-D tensor, got rank %d", v.rank)
	}
	v.alt = c.unique(v.name + "/nchw")
	c.emit("Transpose", []string{v.name}, []string{v.alt}, ints("perm", nhwcToNCHW))
	return v.alt, nil
}

func ints(name string, v []int) *onnxpb.AttributeProto {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return ints64(name, out)
}

func ints64(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INT.Enum(), I: &v}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: &v}
}

func strAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// i64Const materializes an int64 initializer (shapes, axes, slice bounds).
func (c *converter) i64Const(suffix string, shape []int64, v []int64) string {
	name := c.tmp(suffix)
	c.inits = append(c.inits, onnx.Int64Tensor(name, shape, v))
	return name
}

func (c *converter) f32Scalar(suffix string, v float32) string {
	name := c.tmp(suffix)
	c.inits = append(c.inits, onnx.Float32Tensor(name, nil, []float32{v}))
	return name
}

// asInt64 returns an int64 ONNX value for an integer tensor input (TF shapes are often int32).
func (c *converter) asInt64(v *value, suffix string) (string, error) {
	if v.c != nil {
		return c.i64Const(suffix, v.c.shape, v.c.ints()), nil
	}
	name, err := c.nhwc(v)
	if err != nil {
		return "", err
	}
	if v.dtype == tfpb.DataType_DT_INT64 {
		return name, nil
	}
	return c.op1("Cast", suffix, []string{name}, intAttr("to", int64(onnxpb.TensorProto_INT64))), nil
}

// normAxes turns possibly negative axes into [0, rank). With the rank unknown, negative axes
// stay negative: ONNX (opset 13) counts them from the end exactly as TF does.
func normAxes(axes []int64, rank int) ([]int64, error) {
	out := make([]int64, len(axes))
	for i, a := range axes {
		if a < 0 && rank >= 0 {
			a += int64(rank)
		}
		if rank >= 0 && (a < 0 || a >= int64(rank)) {
			return nil, fmt.Errorf("axis %d out of range for rank %d", axes[i], rank)
		}
		out[i] = a
	}
	return out, nil
}
