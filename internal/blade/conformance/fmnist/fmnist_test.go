package fmnist

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/ort"
)

func TestParseIdx(t *testing.T) {
	good := []byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 10, 20, 30, 40}
	dims, px, err := ParseIdx(good)
	if err != nil || len(dims) != 3 || dims[0] != 2 || dims[2] != 2 || string(px) != "\x0a\x14\x1e\x28" {
		t.Fatalf("ParseIdx(good) = %v, %v, %v", dims, px, err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"png", []byte("\x89PNG\r\n"), "bad magic"},
		{"int32 elements", []byte{0, 0, 0x0c, 1, 0, 0, 0, 1, 1, 2, 3, 4}, "only unsigned bytes"},
		{"header cut", []byte{0, 0, 8, 3, 0, 0, 0, 2}, "do not fit"},
		{"payload short", good[:len(good)-1], "payload is 3 bytes"},
		{"payload long", append(append([]byte{}, good...), 0), "payload is 5 bytes"},
		{"zero dim", []byte{0, 0, 8, 1, 0, 0, 0, 0}, "dimension 0 is 0"},
		{"huge dims", []byte{0, 0, 8, 2, 0x7f, 0, 0, 0, 0x7f, 0, 0, 0}, "dimension 0"},
	} {
		if _, _, err := ParseIdx(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestInputScalesPixels(t *testing.T) {
	s := &Set{Rows: 1, Cols: 2, Images: [][]byte{{0, 255}}, Labels: []byte{1}}
	in := s.Input(0)
	if got := in.Shape; len(got) != 4 || got[2] != 1 || got[3] != 2 {
		t.Fatalf("shape %v, want [1 1 1 2]", got)
	}
	if string(in.Data) != "\x00\x00\x00\x00\x00\x00\x80\x3f" { // 0.0, 1.0
		t.Errorf("data % x, want 0.0 and 1.0", in.Data)
	}
}

// TestCommittedModelAccuracy scores the committed model on the real test set: the model the
// benchmark uses must classify about 90% of the 10,000 images right.
func TestCommittedModelAccuracy(t *testing.T) {
	set, err := LoadTest(DefaultDir)
	if err != nil {
		t.Skipf("Fashion-MNIST test set not installed (apt-get install dataset-fashion-mnist): %v", err)
	}
	if len(set.Images) != 10000 || set.Rows != 28 {
		t.Fatalf("test set has %d images of %d rows, want 10000 of 28", len(set.Images), set.Rows)
	}
	lib := os.Getenv("OPENEAS_ORT_LIB")
	if lib == "" {
		t.Skip("OPENEAS_ORT_LIB is not set")
	}
	if err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSession("../../../../testdata/fashion-mnist/model.onnx", ort.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc, err := Accuracy(context.Background(), s, set, "image", "logits", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fp32 accuracy on the 10,000 test images: %.2f%%", 100*acc)
	if acc < 0.88 {
		t.Errorf("accuracy %.2f%%, want ≥ 88%%", 100*acc)
	}
}
