package auxdata

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openeas/openeas/internal/tensor"
)

// Malformed files must give errors, never panics. Seeds: the fixtures plus
// the corpus in testdata/fuzz.

func addFixtures(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzReadNpy(f *testing.F) {
	addFixtures(f, "tf_seed.npy", "tf_varied.npy", "plain_f32.npy", "fortran_i16.npy", "bigendian_f8.npy")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.npy")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ds, err := Read(p)
		if err == nil {
			for _, s := range ds.Samples {
				for _, v := range valuesOf(s) {
					if err := v.Validate(); err != nil {
						t.Fatalf("Read returned an invalid tensor: %v", err)
					}
				}
			}
		}
	})
}

// FuzzReadPickle feeds arbitrary pickle bytes behind a valid object-array header.
func FuzzReadPickle(f *testing.F) {
	for _, n := range []string{"tf_seed.npy", "tf_varied.npy"} {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		_, payload, err := parseNpy(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(payload)
	}
	f.Fuzz(func(t *testing.T, pickle []byte) {
		samples, err := unpickleFeeds(pickle)
		if err == nil {
			for _, s := range samples {
				for _, v := range valuesOf(s) {
					if err := v.Validate(); err != nil {
						t.Fatalf("invalid tensor: %v", err)
					}
				}
			}
		}
	})
}

func FuzzReadZip(f *testing.F) {
	addFixtures(f, "named.npz", "positional.npz", "stacked.npz", "torch_views.pth")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.pth")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = Read(p)
	})
}

func valuesOf(s Sample) []*tensor.Tensor {
	var out []*tensor.Tensor
	for _, k := range sortedKeys(s.Named) {
		out = append(out, s.Named[k])
	}
	return append(out, s.Positional...)
}
