package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/openeas/openeas/internal/tensor"
)

// warmUp runs one request of zeros (dynamic dimensions set to 1) so that the runtime's lazy
// initialization happens before the first client request, not during it.
func warmUp(ctx context.Context, md *model) error {
	if len(md.sig.Inputs) == 0 {
		return errors.New("model has no inputs")
	}
	in := make(map[string]*tensor.Tensor, len(md.sig.Inputs))
	for _, info := range md.sig.Inputs {
		if info.Shape == nil {
			return fmt.Errorf("input %q has an unknown rank", info.Name)
		}
		shape := make([]int64, len(info.Shape))
		for i, d := range info.Shape {
			if d < 0 {
				d = 1
			}
			shape[i] = d
		}
		dt := info.ValueDType()
		t := &tensor.Tensor{DType: dt, Shape: shape}
		n := tensor.NumElements(shape)
		if dt == tensor.String {
			t.Strings = make([]string, n)
		} else if sz := dt.Size(); sz > 0 {
			t.Data = make([]byte, n*int64(sz))
		} else {
			return fmt.Errorf("input %q has dtype %v", info.Name, dt)
		}
		in[info.Name] = t
	}
	if _, err := md.proc.Predict(ctx, in, nil); err != nil {
		return fmt.Errorf("warm-up request: %w", err)
	}
	return nil
}
