package daemon

import (
	"errors"
	"testing"

	"github.com/openeas/openeas/internal/spec"
)

func TestPodResources(t *testing.T) {
	noCUDA := func(spec.ProcessorInfo) error { return errors.New("CPU-only build") }
	withCUDA := func(spec.ProcessorInfo) error { return nil }
	for _, tt := range []struct {
		processor string
		check     func(spec.ProcessorInfo) error
		wantGPU   int
	}{
		{"pytorch_gpu", withCUDA, 1},         // served on the GPU it asks for
		{"tensorflow_gpu_1.15", noCUDA, 0},   // gpu fallback: served on CPU
		{"onnxruntime_cpu", noCUDA, 1},       // a CPU processor keeps what metadata asks
		{"pytorch_gpu_1.10", noCUDA, 0},      // fallback again, by alias
		{"tensorflow_gpu_1.15", withCUDA, 1}, // a GPU runtime present
	} {
		svc := &spec.Service{Processor: tt.processor, Resource: "T4_8CORE", Metadata: spec.Metadata{CPU: 4, Memory: 4096, GPU: 1}}
		r := podResources(svc, tt.check)
		if r.GPU != tt.wantGPU || r.CPU != 4 || r.MemoryMB != 4096 || r.Group != "T4_8CORE" {
			t.Errorf("%s: %+v, want GPU %d and the rest of metadata", tt.processor, r, tt.wantGPU)
		}
	}
}
