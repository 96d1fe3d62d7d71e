// Package tfpb holds Go types for a wire-compatible subset of TensorFlow's GraphDef protos,
// generated from graph.proto (regenerate with `go generate`; the generated code is committed).
package tfpb

//go:generate protoc --plugin=protoc-gen-go=$HOME/go/bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative graph.proto
