package auxdata

import (
	"fmt"
	"strings"

	"github.com/openeas/openeas/internal/tensor"
)

// Bind matches every sample to the model inputs sig and returns one feed
// per sample, keyed by input name.
//
//   - Named samples: a key matches an input of the same name, also when one
//     side carries a TensorFlow output suffix (":0"). Every input needs a
//     value and every key must match an input.
//   - Positional samples: values bind to sig in order; the counts must agree.
//   - dtypes must be equal and shapes must fit (Info.Accepts). A 0-d value
//     (numpy or Python scalar) therefore fits only a scalar input.
//   - Plain .npy/.npz data whose arrays do not fit as they are, but all
//     share a leading length N and fit with that axis removed, is split into
//     N samples.
//
// Any mismatch is an error naming the sample index, the input, and the
// expected vs found dtype and shape.
func (d *Dataset) Bind(sig []tensor.Info) ([]map[string]*tensor.Tensor, error) {
	var feeds []map[string]*tensor.Tensor
	for i, s := range d.Samples {
		vals, err := s.ordered(i, sig)
		if err != nil {
			return nil, err
		}
		err = check(i, sig, vals)
		if err != nil && (d.Format == FormatNpy || d.Format == FormatNpz) {
			if split, ok := unstack(sig, vals); ok {
				for _, v := range split {
					feeds = append(feeds, feed(sig, v))
				}
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		feeds = append(feeds, feed(sig, vals))
	}
	return feeds, nil
}

func feed(sig []tensor.Info, vals []*tensor.Tensor) map[string]*tensor.Tensor {
	m := make(map[string]*tensor.Tensor, len(sig))
	for k, in := range sig {
		m[in.Name] = vals[k]
	}
	return m
}

func stripPort(name string) string {
	if i := strings.LastIndexByte(name, ':'); i > 0 {
		port := name[i+1:]
		if port != "" && strings.Trim(port, "0123456789") == "" {
			return name[:i]
		}
	}
	return name
}

// ordered lists the sample's values in signature order.
func (s Sample) ordered(i int, sig []tensor.Info) ([]*tensor.Tensor, error) {
	names := make([]string, len(sig))
	for k, in := range sig {
		names[k] = in.Name
	}
	if s.Named == nil {
		if len(s.Positional) != len(sig) {
			return nil, fmt.Errorf("auxdata: sample %d: %d values for %d model inputs (%s)", i, len(s.Positional), len(sig), strings.Join(names, ", "))
		}
		return s.Positional, nil
	}
	vals := make([]*tensor.Tensor, len(sig))
	used := map[string]bool{}
	for k, in := range sig {
		key := ""
		if _, ok := s.Named[in.Name]; ok {
			key = in.Name
		} else {
			for _, cand := range sortedKeys(s.Named) {
				if stripPort(cand) == stripPort(in.Name) {
					key = cand
					break
				}
			}
		}
		if key == "" {
			return nil, fmt.Errorf("auxdata: sample %d: input %q: missing (the sample has %s)", i, in.Name, strings.Join(sortedKeys(s.Named), ", "))
		}
		used[key] = true
		vals[k] = s.Named[key]
	}
	for _, k := range sortedKeys(s.Named) {
		if !used[k] {
			return nil, fmt.Errorf("auxdata: sample %d: %q matches no model input (inputs: %s)", i, k, strings.Join(names, ", "))
		}
	}
	return vals, nil
}

func check(i int, sig []tensor.Info, vals []*tensor.Tensor) error {
	for k, in := range sig {
		v := vals[k]
		// An Invalid dtype is one the model does not declare: any fits (tensor.Info).
		if (in.DType != tensor.Invalid && v.DType != in.DType) || !in.Accepts(v.Shape) {
			return fmt.Errorf("auxdata: sample %d: input %q: expected %v%s, found %v%s",
				i, in.Name, in.DType, shapeOrAny(in.Shape), v.DType, tensor.ShapeString(v.Shape))
		}
	}
	return nil
}

func shapeOrAny(s []int64) string {
	if s == nil {
		return "[any shape]"
	}
	return tensor.ShapeString(s)
}

// unstack splits values stacked along a shared leading axis, when each
// slice fits its input.
func unstack(sig []tensor.Info, vals []*tensor.Tensor) ([][]*tensor.Tensor, bool) {
	if len(vals) == 0 {
		return nil, false
	}
	n := int64(-1)
	for k, v := range vals {
		if len(v.Shape) == 0 || v.DType != sig[k].DType || !sig[k].Accepts(v.Shape[1:]) {
			return nil, false
		}
		if n >= 0 && v.Shape[0] != n {
			return nil, false
		}
		n = v.Shape[0]
	}
	if n <= 0 {
		return nil, false
	}
	out := make([][]*tensor.Tensor, n)
	for j := range out {
		out[j] = make([]*tensor.Tensor, len(vals))
		for k, v := range vals {
			inner := v.Shape[1:]
			per := tensor.NumElements(inner)
			t := &tensor.Tensor{DType: v.DType, Shape: append([]int64{}, inner...)}
			if v.DType == tensor.String {
				t.Strings = v.Strings[int64(j)*per : int64(j+1)*per]
			} else {
				sz := per * int64(v.DType.Size())
				t.Data = v.Data[int64(j)*sz : int64(j+1)*sz]
			}
			out[j][k] = t
		}
	}
	return out, true
}
