// Package easpb holds the protobuf schemas of EAS's predict API (proto/) and the Go code
// generated from them: tfpb (package tensorflow.eas) and torchpb (package pytorch.eas).
// The generated code is committed; CI never regenerates it. To regenerate, install protoc and
// protoc-gen-go v1.36.12 (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12), then run
// go generate ./internal/easpb
package easpb

//go:generate protoc --proto_path=proto --go_out=. --go_opt=module=github.com/openeas/openeas/internal/easpb tf_predict.proto torch_predict.proto
