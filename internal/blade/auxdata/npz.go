package auxdata

import (
	"archive/zip"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/openeas/openeas/internal/tensor"
)

var positionalName = regexp.MustCompile(`^arr_(\d+)$`)

// decodeNpz reads an np.savez archive as one sample: name → array, or
// positional when every member is called arr_N (np.savez without names).
func decodeNpz(b []byte) (*Dataset, error) {
	r, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("npz: %w", err)
	}
	named := map[string]*tensor.Tensor{}
	for _, f := range r.File {
		name := strings.TrimSuffix(f.Name, ".npy")
		if _, dup := named[name]; dup {
			return nil, fmt.Errorf("npz: array %q appears twice", name)
		}
		data, err := readMember(f)
		if err != nil {
			return nil, fmt.Errorf("npz: %w", err)
		}
		h, payload, err := parseNpy(data)
		if err != nil {
			return nil, fmt.Errorf("npz: member %s: %w", f.Name, err)
		}
		d, err := parseDescr(h.descr)
		if err != nil {
			return nil, fmt.Errorf("npz: member %s: %w", f.Name, err)
		}
		if d.kind == 'O' {
			return nil, fmt.Errorf("npz: member %s: object arrays are not supported in .npz (save feed dicts with np.save to a .npy)", f.Name)
		}
		t, err := arrayTensor(d, h.shape, h.fortran, payload)
		if err != nil {
			return nil, fmt.Errorf("npz: member %s: %w", f.Name, err)
		}
		named[name] = t
	}
	if len(named) == 0 {
		return nil, fmt.Errorf("npz: archive holds no arrays")
	}
	keys := sortedKeys(named)
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		m := positionalName.FindStringSubmatch(k)
		if m == nil {
			return &Dataset{Samples: []Sample{{Named: named}}, Format: FormatNpz}, nil
		}
		n, _ := strconv.Atoi(m[1])
		idx = append(idx, n)
	}
	slices.Sort(idx)
	s := Sample{}
	for want, n := range idx {
		if n != want {
			return nil, fmt.Errorf("npz: positional arrays skip arr_%d", want)
		}
		s.Positional = append(s.Positional, named["arr_"+strconv.Itoa(n)])
	}
	return &Dataset{Samples: []Sample{s}, Format: FormatNpz}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
