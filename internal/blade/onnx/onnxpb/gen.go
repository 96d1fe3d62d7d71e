// Package onnxpb holds the Go types generated from ONNX's onnx.proto
// (Debian's libonnx-dev copy, ONNX 1.12, IR version 8).
//
// The generated file is committed so builds need neither protoc nor the
// plugin. To regenerate (protoc 3.21, protoc-gen-go v1.36.12):
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go generate ./internal/blade/onnx/onnxpb
package onnxpb

//go:generate protoc -I/usr/include/onnx --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/openeas/openeas/internal/blade/onnx/onnxpb onnx.proto
