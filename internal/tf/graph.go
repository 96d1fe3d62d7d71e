// Package tf converts TensorFlow 1.x frozen GraphDefs (frozen.pb: weights as Const nodes) into
// ONNX models that the ONNX Runtime processor serves. TF tensor names survive as ONNX value
// names with a trailing ":0" stripped ("logits:0" → "logits", "split:1" stays "split:1"), so
// requests, output filters and Blade configuration that name TF tensors need little mapping.
package tf

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/tf/tfpb"
)

// ConverterVersion changes whenever the converter's output for a given graph may change;
// it is part of the deploy pipeline's cache key.
const ConverterVersion = "tf2onnx-go/1"

// TensorSpec describes one placeholder of the TF signature.
type TensorSpec struct {
	Name  string  `json:"name"`  // TF tensor name, "input:0"
	DType string  `json:"dtype"` // TF dtype, "DT_FLOAT"
	Shape []int64 `json:"shape"` // -1 for unknown dims; nil for unknown rank
}

// Signature is the TF signature of a converted graph, recorded in the bundle.
type Signature struct {
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []string     `json:"outputs"` // TF tensor names, "logits:0"
}

// ParseGraphDef decodes a binary GraphDef.
func ParseGraphDef(b []byte) (*tfpb.GraphDef, error) {
	g := &tfpb.GraphDef{}
	if err := proto.Unmarshal(b, g); err != nil {
		return nil, fmt.Errorf("decode GraphDef: %w (expected a binary TensorFlow GraphDef, e.g. frozen.pb)", err)
	}
	if len(g.Node) == 0 {
		return nil, fmt.Errorf("decode GraphDef: the graph has no nodes (expected a binary TensorFlow GraphDef, e.g. frozen.pb)")
	}
	return g, nil
}

// tensorRef is a parsed TF tensor name "node:k".
type tensorRef struct {
	node string
	idx  int
}

func (r tensorRef) String() string { return r.node + ":" + strconv.Itoa(r.idx) }

// onnxName is the ONNX value name of a TF tensor: ":0" is dropped.
func (r tensorRef) onnxName() string {
	if r.idx == 0 {
		return r.node
	}
	return r.String()
}

// parseRef parses "node", "node:k" and "^node" (a control input, reported as control).
func parseRef(s string) (ref tensorRef, control bool, err error) {
	if strings.HasPrefix(s, "^") {
		return tensorRef{node: s[1:]}, true, nil
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		k, err := strconv.Atoi(s[i+1:])
		if err != nil || k < 0 {
			return tensorRef{}, false, fmt.Errorf("tensor name %q: expected node or node:index", s)
		}
		return tensorRef{node: s[:i], idx: k}, false, nil
	}
	return tensorRef{node: s}, false, nil
}

// TFName normalizes a user-given tensor name to the TF form "node:k".
func TFName(s string) string {
	r, _, err := parseRef(s)
	if err != nil {
		return s
	}
	return r.String()
}

// ONNXName maps a TF tensor name ("x", "x:0", "x:1") to the ONNX value name the converter
// gives it ("x", "x", "x:1").
func ONNXName(s string) string {
	r, _, err := parseRef(s)
	if err != nil {
		return s
	}
	return r.onnxName()
}

// controlFlowOps are TF 1.x control-flow and TensorArray ops: never converted.
var controlFlowOps = map[string]bool{
	"Switch": true, "Merge": true, "Enter": true, "Exit": true, "NextIteration": true, "LoopCond": true,
	"RefSwitch": true, "RefMerge": true, "RefEnter": true, "RefExit": true, "RefNextIteration": true,
	"TensorArrayV3": true, "TensorArrayReadV3": true, "TensorArrayWriteV3": true, "TensorArrayGatherV3": true,
	"TensorArrayScatterV3": true, "TensorArraySizeV3": true, "TensorArraySplitV3": true, "TensorArrayConcatV3": true,
	"While": true, "StatelessWhile": true, "If": true, "StatelessIf": true,
}

// UnsupportedError lists every op of the graph the converter cannot convert, with the nodes
// that use it. The deploy fails with it; no partial model is produced.
type UnsupportedError struct {
	Ops map[string][]string // op type → node names (sorted)
}

func (e *UnsupportedError) Error() string {
	ops := make([]string, 0, len(e.Ops))
	for op := range e.Ops {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var b strings.Builder
	b.WriteString("the TensorFlow graph uses ops the GraphDef→ONNX converter does not support: ")
	for i, op := range ops {
		if i > 0 {
			b.WriteString("; ")
		}
		nodes := e.Ops[op]
		kind := ""
		if controlFlowOps[op] {
			kind = " (control flow)"
		}
		shown := nodes
		if len(shown) > 5 {
			shown = shown[:5]
		}
		fmt.Fprintf(&b, "%s%s in node(s) %s", op, kind, strings.Join(shown, ", "))
		if len(nodes) > len(shown) {
			fmt.Fprintf(&b, " and %d more", len(nodes)-len(shown))
		}
	}
	b.WriteString(". Freeze the graph without control flow, or export the model to ONNX and use onnxruntime_cpu")
	return b.String()
}

// prune returns the nodes needed to compute outs, in topological order (data inputs only:
// control dependencies do not matter in a frozen inference graph).
func prune(nodes map[string]*tfpb.NodeDef, outs []tensorRef) ([]*tfpb.NodeDef, error) {
	var order []*tfpb.NodeDef
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("the graph has a cycle through node %q (control flow loops are not supported)", name)
		case 2:
			return nil
		}
		n, ok := nodes[name]
		if !ok {
			return fmt.Errorf("node %q is referenced but not defined in the graph", name)
		}
		state[name] = 1
		for _, in := range n.Input {
			ref, control, err := parseRef(in)
			if err != nil {
				return fmt.Errorf("node %q input: %w", name, err)
			}
			if control {
				continue
			}
			if err := visit(ref.node); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, n)
		return nil
	}
	for _, o := range outs {
		if err := visit(o.node); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// defaultOutputs are the tensors no node consumes (sinks), excluding constants and no-ops.
func defaultOutputs(g *tfpb.GraphDef) []tensorRef {
	used := map[string]bool{}
	for _, n := range g.Node {
		for _, in := range n.Input {
			if ref, _, err := parseRef(in); err == nil {
				used[ref.node] = true
			}
		}
	}
	var outs []tensorRef
	for _, n := range g.Node {
		if used[n.Name] || slices.Contains([]string{"Const", "NoOp", "Placeholder", "Assert", "SaveV2", "RestoreV2"}, n.Op) {
			continue
		}
		outs = append(outs, tensorRef{node: n.Name})
	}
	return outs
}

func attrInt(n *tfpb.NodeDef, name string, def int64) int64 {
	if a, ok := n.Attr[name]; ok {
		if v, ok := a.Value.(*tfpb.AttrValue_I); ok {
			return v.I
		}
	}
	return def
}

func attrFloat(n *tfpb.NodeDef, name string, def float32) float32 {
	if a, ok := n.Attr[name]; ok {
		if v, ok := a.Value.(*tfpb.AttrValue_F); ok {
			return v.F
		}
	}
	return def
}

func attrBool(n *tfpb.NodeDef, name string) bool {
	if a, ok := n.Attr[name]; ok {
		if v, ok := a.Value.(*tfpb.AttrValue_B); ok {
			return v.B
		}
	}
	return false
}

func attrString(n *tfpb.NodeDef, name, def string) string {
	if a, ok := n.Attr[name]; ok {
		if v, ok := a.Value.(*tfpb.AttrValue_S); ok {
			return string(v.S)
		}
	}
	return def
}

func attrType(n *tfpb.NodeDef, name string) tfpb.DataType {
	if a, ok := n.Attr[name]; ok {
		if v, ok := a.Value.(*tfpb.AttrValue_Type); ok {
			return v.Type
		}
	}
	return tfpb.DataType_DT_INVALID
}

func attrInts(n *tfpb.NodeDef, name string) []int64 {
	if a, ok := n.Attr[name]; ok {
		if l := a.GetList(); l != nil {
			return l.I
		}
	}
	return nil
}

func attrStrings(n *tfpb.NodeDef, name string) []string {
	var out []string
	if a, ok := n.Attr[name]; ok {
		if l := a.GetList(); l != nil {
			for _, s := range l.S {
				out = append(out, string(s))
			}
		}
	}
	return out
}

func attrShape(n *tfpb.NodeDef, name string) []int64 {
	a, ok := n.Attr[name]
	if !ok {
		return nil
	}
	s := a.GetShape()
	if s == nil || s.UnknownRank {
		return nil
	}
	dims := make([]int64, len(s.Dim))
	for i, d := range s.Dim {
		dims[i] = d.Size
	}
	return dims
}

// protoMarshal encodes a GraphDef (tests and tools build graphs with it).
func protoMarshal(g *tfpb.GraphDef) ([]byte, error) { return proto.Marshal(g) }
