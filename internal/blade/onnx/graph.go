package onnx

import (
	"container/heap"
	"fmt"
	"slices"
	"strconv"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// Graph is a thin index over a GraphProto: which node produces and which
// nodes consume each value, initializers, value infos and opsets. The proto
// stays the source of truth. Mutating helpers keep the index valid; after
// editing Proto directly, call Reindex.
//
// Consumers include nodes that read a value only from inside a subgraph
// (If/Loop/Scan bodies reference outer-scope values by name).
type Graph struct {
	Proto *onnxpb.GraphProto

	model  *onnxpb.ModelProto // nil when built by NewGraph
	opsets []*onnxpb.OperatorSetIdProto

	dirty     bool
	producer  map[string]*onnxpb.NodeProto
	consumers map[string][]*onnxpb.NodeProto
	implicit  map[*onnxpb.NodeProto][]string
	inits     map[string]*onnxpb.TensorProto
	valueInfo map[string]*onnxpb.ValueInfoProto
	inputs    map[string]bool
	outputs   map[string]bool
	names     map[string]bool
}

// NewGraph indexes g. opsets are the model's opset imports (domain → version);
// SetOpset on such a graph only changes the given entries or a private list.
func NewGraph(g *onnxpb.GraphProto, opsets ...*onnxpb.OperatorSetIdProto) *Graph {
	gr := &Graph{Proto: g, opsets: opsets, dirty: true}
	gr.ensure()
	return gr
}

// ModelGraph indexes m's main graph; SetOpset updates m's opset imports.
func ModelGraph(m *onnxpb.ModelProto) *Graph {
	if m.Graph == nil {
		m.Graph = &onnxpb.GraphProto{}
	}
	gr := &Graph{Proto: m.Graph, model: m, dirty: true}
	gr.ensure()
	return gr
}

// Model returns the model this graph belongs to, or nil.
func (g *Graph) Model() *onnxpb.ModelProto { return g.model }

func (g *Graph) opsetList() []*onnxpb.OperatorSetIdProto {
	if g.model != nil {
		return g.model.OpsetImport
	}
	return g.opsets
}

func normDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

// Opset returns the imported version of domain ("" or "ai.onnx" is the
// default domain), or 0 when the domain is not imported.
func (g *Graph) Opset(domain string) int64 {
	for _, o := range g.opsetList() {
		if normDomain(o.GetDomain()) == normDomain(domain) {
			return o.GetVersion()
		}
	}
	return 0
}

// SetOpset sets (or adds) the imported version of domain.
func (g *Graph) SetOpset(domain string, version int64) {
	for _, o := range g.opsetList() {
		if normDomain(o.GetDomain()) == normDomain(domain) {
			o.Version = &version
			return
		}
	}
	o := &onnxpb.OperatorSetIdProto{Domain: &domain, Version: &version}
	if g.model != nil {
		g.model.OpsetImport = append(g.model.OpsetImport, o)
	} else {
		g.opsets = append(g.opsets, o)
	}
}

// Reindex rebuilds the index after direct edits of Proto.
func (g *Graph) Reindex() { g.dirty = true; g.ensure() }

func (g *Graph) ensure() {
	if !g.dirty {
		return
	}
	g.dirty = false
	p := g.Proto
	g.producer = map[string]*onnxpb.NodeProto{}
	g.consumers = map[string][]*onnxpb.NodeProto{}
	g.implicit = map[*onnxpb.NodeProto][]string{}
	g.inits = map[string]*onnxpb.TensorProto{}
	g.valueInfo = map[string]*onnxpb.ValueInfoProto{}
	g.inputs = map[string]bool{}
	g.outputs = map[string]bool{}
	g.names = map[string]bool{}
	for _, t := range p.GetInitializer() {
		g.inits[t.GetName()] = t
		g.names[t.GetName()] = true
	}
	for _, vi := range p.GetValueInfo() {
		g.valueInfo[vi.GetName()] = vi
		g.names[vi.GetName()] = true
	}
	for _, vi := range p.GetInput() {
		g.inputs[vi.GetName()] = true
		g.valueInfo[vi.GetName()] = vi
		g.names[vi.GetName()] = true
	}
	for _, vi := range p.GetOutput() {
		g.outputs[vi.GetName()] = true
		if _, ok := g.valueInfo[vi.GetName()]; !ok {
			g.valueInfo[vi.GetName()] = vi
		}
		g.names[vi.GetName()] = true
	}
	for _, n := range p.GetNode() {
		g.names[n.GetName()] = true
		for _, o := range n.GetOutput() {
			if o != "" {
				g.producer[o] = n
				g.names[o] = true
			}
		}
		seen := map[string]bool{}
		for _, in := range n.GetInput() {
			if in != "" && !seen[in] {
				seen[in] = true
				g.consumers[in] = append(g.consumers[in], n)
			}
		}
		imp := OuterReferences(n)
		g.implicit[n] = imp
		for _, in := range imp {
			if !seen[in] {
				seen[in] = true
				g.consumers[in] = append(g.consumers[in], n)
			}
		}
	}
}

// Producer returns the node whose output is name, or nil.
func (g *Graph) Producer(name string) *onnxpb.NodeProto { g.ensure(); return g.producer[name] }

// Consumers returns the nodes reading name, directly or from a subgraph, in graph order.
func (g *Graph) Consumers(name string) []*onnxpb.NodeProto { g.ensure(); return g.consumers[name] }

// Initializer returns the initializer called name, or nil.
func (g *Graph) Initializer(name string) *onnxpb.TensorProto { g.ensure(); return g.inits[name] }

// ValueInfo returns the declared type of name (value_info, input or output), or nil.
func (g *Graph) ValueInfo(name string) *onnxpb.ValueInfoProto { g.ensure(); return g.valueInfo[name] }

// IsInput reports whether name is a graph input.
func (g *Graph) IsInput(name string) bool { g.ensure(); return g.inputs[name] }

// IsOutput reports whether name is a graph output.
func (g *Graph) IsOutput(name string) bool { g.ensure(); return g.outputs[name] }

// Constant returns the initializer for name when its value is fixed: it is
// not also a graph input a caller could override (from IR version 4 on,
// initializers listed as inputs are only defaults).
func (g *Graph) Constant(name string) *onnxpb.TensorProto {
	g.ensure()
	t := g.inits[name]
	if t == nil {
		return nil
	}
	if g.inputs[name] && (g.model == nil || g.model.GetIrVersion() >= 4) {
		return nil
	}
	return t
}

// UniqueName returns base, or base with a numeric suffix, unused by any
// value, node or initializer of this graph.
func (g *Graph) UniqueName(base string) string {
	g.ensure()
	if !g.names[base] {
		g.names[base] = true
		return base
	}
	for i := 1; ; i++ {
		n := base + "_" + strconv.Itoa(i)
		if !g.names[n] {
			g.names[n] = true
			return n
		}
	}
}

// AddInitializer appends t to the graph's initializers.
func (g *Graph) AddInitializer(t *onnxpb.TensorProto) {
	g.Proto.Initializer = append(g.Proto.Initializer, t)
	g.dirty = true
}

// RemoveNodes deletes the given nodes from the graph.
func (g *Graph) RemoveNodes(nodes ...*onnxpb.NodeProto) {
	if len(nodes) == 0 {
		return
	}
	drop := map[*onnxpb.NodeProto]bool{}
	for _, n := range nodes {
		drop[n] = true
	}
	g.Proto.Node = slices.DeleteFunc(g.Proto.Node, func(n *onnxpb.NodeProto) bool { return drop[n] })
	g.dirty = true
}

// InsertNodeAfter inserts n right after the node "after" (at the end when
// after is nil or absent). Order only matters for readability; TopoSort fixes it.
func (g *Graph) InsertNodeAfter(after, n *onnxpb.NodeProto) {
	i := slices.Index(g.Proto.Node, after)
	if after == nil || i < 0 {
		g.Proto.Node = append(g.Proto.Node, n)
	} else {
		g.Proto.Node = slices.Insert(g.Proto.Node, i+1, n)
	}
	g.dirty = true
}

// ReplaceAllUses makes every node that reads oldName (directly or inside a
// subgraph that does not redefine it) read newName instead. Graph outputs
// are not renamed. It returns the number of rewritten references.
func (g *Graph) ReplaceAllUses(oldName, newName string) int {
	n := replaceUses(g.Proto.GetNode(), oldName, newName)
	if n > 0 {
		g.dirty = true
	}
	return n
}

func replaceUses(nodes []*onnxpb.NodeProto, oldName, newName string) int {
	count := 0
	for _, n := range nodes {
		for i, in := range n.Input {
			if in == oldName {
				n.Input[i] = newName
				count++
			}
		}
		for _, sg := range Subgraphs(n) {
			if definesName(sg, oldName) {
				continue
			}
			count += replaceUses(sg.GetNode(), oldName, newName)
		}
	}
	return count
}

func definesName(g *onnxpb.GraphProto, name string) bool {
	for _, vi := range g.GetInput() {
		if vi.GetName() == name {
			return true
		}
	}
	for _, t := range g.GetInitializer() {
		if t.GetName() == name {
			return true
		}
	}
	for _, n := range g.GetNode() {
		if slices.Contains(n.GetOutput(), name) {
			return true
		}
	}
	return false
}

// Subgraphs returns the graphs held in n's attributes (If branches, Loop and
// Scan bodies), in attribute order.
func Subgraphs(n *onnxpb.NodeProto) []*onnxpb.GraphProto {
	var out []*onnxpb.GraphProto
	for _, a := range n.GetAttribute() {
		if a.GetG() != nil {
			out = append(out, a.GetG())
		}
		out = append(out, a.GetGraphs()...)
	}
	return out
}

// OuterReferences lists, sorted, the names n's subgraphs read from the
// enclosing scope (names used but not defined inside them).
func OuterReferences(n *onnxpb.NodeProto) []string {
	sgs := Subgraphs(n)
	if len(sgs) == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, sg := range sgs {
		collectOuter(sg, map[string]bool{}, set)
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// collectOuter adds to refs the names g reads that neither g nor any
// enclosing subgraph in scope defines.
func collectOuter(g *onnxpb.GraphProto, scope map[string]bool, refs map[string]bool) {
	local := map[string]bool{}
	for k := range scope {
		local[k] = true
	}
	for _, vi := range g.GetInput() {
		local[vi.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		local[t.GetName()] = true
	}
	for _, s := range g.GetSparseInitializer() {
		local[s.GetValues().GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			local[o] = true
		}
	}
	use := func(name string) {
		if name != "" && !local[name] {
			refs[name] = true
		}
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			use(in)
		}
		for _, sg := range Subgraphs(n) {
			inner := map[string]bool{}
			collectOuter(sg, local, inner)
			for k := range inner {
				use(k)
			}
		}
	}
	for _, vi := range g.GetOutput() {
		use(vi.GetName())
	}
}

// TopoSort orders the nodes so each comes after the producers of its inputs,
// including values its subgraphs read from this graph, and sorts subgraphs
// the same way. Among ready nodes the original order wins, so an already
// sorted graph is unchanged. A cycle is an error naming a node on it.
func (g *Graph) TopoSort() error {
	if err := topoSort(g.Proto); err != nil {
		return err
	}
	g.dirty = true
	return nil
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// producerIndex maps each value a node outputs to that node's index.
func producerIndex(nodes []*onnxpb.NodeProto) map[string]int {
	prod := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.GetOutput() {
			if o != "" {
				prod[o] = i
			}
		}
	}
	return prod
}

func topoSort(gp *onnxpb.GraphProto) error {
	nodes := gp.GetNode()
	prod := producerIndex(nodes)
	indeg := make([]int, len(nodes))
	succ := make([][]int, len(nodes))
	for i, n := range nodes {
		deps := map[int]bool{}
		for _, in := range append(slices.Clone(n.GetInput()), OuterReferences(n)...) {
			if p, ok := prod[in]; ok && p != i && !deps[p] {
				deps[p] = true
				succ[p] = append(succ[p], i)
				indeg[i]++
			} else if ok && p == i {
				return fmt.Errorf("onnx: node %q (%s) reads its own output %q", nodes[i].GetName(), nodes[i].GetOpType(), in)
			}
		}
	}
	h := &intHeap{}
	for i := range nodes {
		if indeg[i] == 0 {
			*h = append(*h, i)
		}
	}
	heap.Init(h)
	order := make([]*onnxpb.NodeProto, 0, len(nodes))
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		order = append(order, nodes[i])
		for _, s := range succ[i] {
			indeg[s]--
			if indeg[s] == 0 {
				heap.Push(h, s)
			}
		}
	}
	if len(order) != len(nodes) {
		for i, d := range indeg {
			if d > 0 {
				return fmt.Errorf("onnx: graph %q has a cycle through node %q (%s)", gp.GetName(), nodes[i].GetName(), nodes[i].GetOpType())
			}
		}
	}
	gp.Node = order
	for _, n := range order {
		for _, sg := range Subgraphs(n) {
			if err := topoSort(sg); err != nil {
				return err
			}
		}
	}
	return nil
}

// RemoveDeadNodes deletes nodes none of whose outputs reach a graph output,
// directly or through subgraph reads, here and inside subgraphs. It returns
// the number of nodes removed.
func (g *Graph) RemoveDeadNodes() int {
	n := removeDead(g.Proto)
	if n > 0 {
		g.dirty = true
	}
	return n
}

func removeDead(gp *onnxpb.GraphProto) int {
	nodes := gp.GetNode()
	prod := producerIndex(nodes)
	live := make([]bool, len(nodes))
	var stack []int
	mark := func(name string) {
		if p, ok := prod[name]; ok && !live[p] {
			live[p] = true
			stack = append(stack, p)
		}
	}
	for _, o := range gp.GetOutput() {
		mark(o.GetName())
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, in := range nodes[i].GetInput() {
			mark(in)
		}
		for _, in := range OuterReferences(nodes[i]) {
			mark(in)
		}
	}
	removed := 0
	kept := nodes[:0]
	for i, n := range nodes {
		if live[i] {
			kept = append(kept, n)
		} else {
			removed++
		}
	}
	clear(nodes[len(kept):])
	gp.Node = kept
	for _, n := range kept {
		for _, sg := range Subgraphs(n) {
			removed += removeDead(sg)
		}
	}
	return removed
}

// RemoveUnusedInitializers deletes initializers no node reads (directly or
// from a subgraph) that are neither graph inputs nor outputs. It returns the
// number removed.
func (g *Graph) RemoveUnusedInitializers() int {
	g.ensure()
	before := len(g.Proto.Initializer)
	g.Proto.Initializer = slices.DeleteFunc(g.Proto.Initializer, func(t *onnxpb.TensorProto) bool {
		n := t.GetName()
		return len(g.consumers[n]) == 0 && !g.inputs[n] && !g.outputs[n]
	})
	removed := before - len(g.Proto.Initializer)
	if removed > 0 {
		g.dirty = true
	}
	return removed
}

// Attr returns n's attribute called name, or nil.
func Attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// AttrInt returns an INT attribute's value, or def when absent.
func AttrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := Attr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

// AttrFloat returns a FLOAT attribute's value, or def when absent.
func AttrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := Attr(n, name); a != nil {
		return a.GetF()
	}
	return def
}

// AttrInts returns an INTS attribute's values, or nil when absent.
func AttrInts(n *onnxpb.NodeProto, name string) []int64 {
	if a := Attr(n, name); a != nil {
		return a.GetInts()
	}
	return nil
}
