package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/spec"
)

// TestProcessorCheck: the installation's check refuses a processor at create time, with its message.
func TestProcessorCheck(t *testing.T) {
	h := newHarness(t, "")
	var asked []string
	h.m.opts.ProcessorCheck = func(p spec.ProcessorInfo) error {
		asked = append(asked, p.Name)
		if p.Runtime == "libtorch" {
			return errors.New("libtorch is not installed; apt-get install libtorch-dev")
		}
		return nil
	}
	_, err := h.m.Create(context.Background(), []byte(`{"name":"pt","model_path":"/m.pt","processor":"pytorch_cpu_1.10"}`))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "processor: libtorch is not installed; apt-get install libtorch-dev") {
		t.Fatalf("create: %v; want ErrInvalid with the check's message", err)
	}
	if len(asked) != 1 || asked[0] != "pytorch_cpu" {
		t.Errorf("check asked about %v, want [pytorch_cpu]", asked)
	}
}
