package tf

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/tf/tfpb"
)

// SavedModelFile is the graph file of a SavedModel directory.
const SavedModelFile = "saved_model.pb"

// DefaultSignature is the signature TensorFlow Serving uses when a request names none.
const DefaultSignature = "serving_default"

// ServeTag is the meta graph tag of the graph meant for serving.
const ServeTag = "serve"

// SignatureDef is one SavedModel signature: aliases mapped to TF tensor names ("x:0").
type SignatureDef struct {
	Inputs     map[string]string `json:"inputs"`
	Outputs    map[string]string `json:"outputs"`
	MethodName string            `json:"method_name,omitempty"`
}

// SavedModel is the serving graph of a frozen SavedModel and its signatures.
type SavedModel struct {
	Graph      *tfpb.GraphDef
	Tags       []string
	Signatures map[string]SignatureDef // by signature name; empty when the model has none
}

// variableOps hold state that a frozen graph has turned into Const nodes.
var variableOps = map[string]bool{
	"Variable": true, "VariableV2": true, "TemporaryVariable": true,
	"VarHandleOp": true, "ReadVariableOp": true, "AssignVariableOp": true,
	"Assign": true, "VarIsInitializedOp": true,
}

// ParseSavedModel decodes a binary saved_model.pb (name is used in errors) and picks its
// meta graph tagged "serve", or the only one. Graphs that still hold variables are refused:
// the converter needs weights as Const nodes, and the variables/ checkpoint is not read.
func ParseSavedModel(name string, b []byte) (*SavedModel, error) {
	var sm tfpb.SavedModel
	if err := proto.Unmarshal(b, &sm); err != nil {
		return nil, fmt.Errorf("decode SavedModel %s: %w (expected a binary saved_model.pb)", name, err)
	}
	mg, err := serveMetaGraph(name, sm.MetaGraphs)
	if err != nil {
		return nil, err
	}
	g := mg.GetGraphDef()
	if len(g.GetNode()) == 0 {
		return nil, fmt.Errorf("SavedModel %s: the meta graph tagged %v has no graph nodes", name, mg.GetMetaInfoDef().GetTags())
	}
	var vars []string
	nodes := make(map[string]bool, len(g.Node))
	for _, n := range g.Node {
		nodes[n.Name] = true
		if variableOps[n.Op] {
			vars = append(vars, fmt.Sprintf("%s (%s)", n.Name, n.Op))
		}
	}
	if len(vars) > 0 {
		sort.Strings(vars)
		if len(vars) > 10 {
			vars = append(vars[:10], fmt.Sprintf("and %d more", len(vars)-10))
		}
		return nil, fmt.Errorf("SavedModel %s holds variables: freeze it first (TF1: tf.compat.v1.graph_util.convert_variables_to_constants; TF2: convert_variables_to_constants_v2), then save the frozen graph as frozen.pb or a SavedModel without variables; variable nodes: %s",
			name, strings.Join(vars, ", "))
	}
	out := &SavedModel{Graph: g, Tags: mg.GetMetaInfoDef().GetTags(), Signatures: map[string]SignatureDef{}}
	for sigName, sd := range mg.SignatureDef {
		def := SignatureDef{Inputs: map[string]string{}, Outputs: map[string]string{}, MethodName: sd.GetMethodName()}
		for _, part := range []struct {
			what  string
			infos map[string]*tfpb.TensorInfo
			dst   map[string]string
		}{{"inputs", sd.Inputs, def.Inputs}, {"outputs", sd.Outputs, def.Outputs}} {
			for alias, ti := range part.infos {
				ref, control, err := parseRef(ti.GetName())
				if err != nil || control || ref.node == "" {
					return nil, fmt.Errorf("SavedModel %s: signature %q %s[%q]: %q is not a dense tensor name (sparse and composite tensors are not supported)",
						name, sigName, part.what, alias, ti.GetName())
				}
				if !nodes[ref.node] {
					return nil, fmt.Errorf("SavedModel %s: signature %q %s[%q] names tensor %q, but the graph has no node %q",
						name, sigName, part.what, alias, ti.GetName(), ref.node)
				}
				part.dst[alias] = ref.String()
			}
		}
		out.Signatures[sigName] = def
	}
	return out, nil
}

func serveMetaGraph(name string, mgs []*tfpb.MetaGraphDef) (*tfpb.MetaGraphDef, error) {
	if len(mgs) == 0 {
		return nil, fmt.Errorf("SavedModel %s has no meta graphs", name)
	}
	var tagSets []string
	for _, mg := range mgs {
		tags := mg.GetMetaInfoDef().GetTags()
		if slices.Contains(tags, ServeTag) {
			return mg, nil
		}
		tagSets = append(tagSets, fmt.Sprintf("%q", tags))
	}
	if len(mgs) == 1 {
		return mgs[0], nil
	}
	return nil, fmt.Errorf("SavedModel %s has %d meta graphs and none is tagged %q (tag sets: %s)", name, len(mgs), ServeTag, strings.Join(tagSets, ", "))
}

// SignatureOutputs lists every tensor the signatures name as an output, sorted and without
// duplicates: the outputs the converted model must keep.
func (m *SavedModel) SignatureOutputs() []string {
	seen := map[string]bool{}
	var outs []string
	for _, sd := range m.Signatures {
		for _, t := range sd.Outputs {
			if !seen[t] {
				seen[t] = true
				outs = append(outs, t)
			}
		}
	}
	sort.Strings(outs)
	return outs
}
