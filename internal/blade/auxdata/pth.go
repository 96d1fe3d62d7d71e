package auxdata

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	pathpkg "path"
	"strings"

	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/openeas/openeas/internal/tensor"
)

// isTorchZip reports whether a zip archive is a torch.save file (it holds a data.pkl).
func isTorchZip(b []byte) bool {
	r, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return false
	}
	for _, f := range r.File {
		if f.Name == "data.pkl" || strings.HasSuffix(f.Name, "/data.pkl") {
			return true
		}
	}
	return false
}

// torchClasses are the globals a torch.save of tensors refers to; any
// other global is an error.
func findTorchClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return &pytorch.RebuildTensorV2{}, nil
	case "torch.FloatStorage":
		return &pytorch.FloatStorageClass{}, nil
	case "torch.HalfStorage":
		return &pytorch.HalfStorageClass{}, nil
	case "torch.DoubleStorage":
		return &pytorch.DoubleStorageClass{}, nil
	case "torch.CharStorage":
		return &pytorch.CharStorageClass{}, nil
	case "torch.ShortStorage":
		return &pytorch.ShortStorageClass{}, nil
	case "torch.IntStorage":
		return &pytorch.IntStorageClass{}, nil
	case "torch.LongStorage":
		return &pytorch.LongStorageClass{}, nil
	case "torch.ByteStorage":
		return &pytorch.ByteStorageClass{}, nil
	case "torch.BoolStorage":
		return &pytorch.BoolStorageClass{}, nil
	case "torch.BFloat16Storage":
		return &pytorch.BFloat16StorageClass{}, nil
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, nil
	}
	return nil, fmt.Errorf("pickle refers to %s.%s, which a list of tensors does not contain", module, name)
}

func storageElemSize(c pytorch.StorageClassInterface) uint64 {
	switch c.(type) {
	case *pytorch.DoubleStorageClass, *pytorch.LongStorageClass:
		return 8
	case *pytorch.FloatStorageClass, *pytorch.IntStorageClass:
		return 4
	case *pytorch.HalfStorageClass, *pytorch.ShortStorageClass, *pytorch.BFloat16StorageClass:
		return 2
	case *pytorch.CharStorageClass, *pytorch.ByteStorageClass, *pytorch.BoolStorageClass:
		return 1
	}
	return 0
}

// loadTorch reads a torch.save zip archive (torch ≥ 1.6). Each storage's
// declared size is checked against its archive member before anything is
// allocated, and panics inside gopickle become errors.
func loadTorch(path string) (v any, err error) {
	r, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("pth: not a torch.save zip archive (the legacy pre-1.6 format is not supported; re-save with a current torch): %w", err)
	}
	defer r.Close()
	members := map[string]*zip.File{}
	var pkl *zip.File
	for _, f := range r.File {
		dir, base := pathpkg.Split(f.Name)
		if base == "data.pkl" && pkl == nil {
			pkl = f
		}
		if strings.HasSuffix(dir, "/data/") {
			members[base] = f
		}
	}
	if pkl == nil {
		return nil, errors.New("pth: archive has no data.pkl")
	}
	data, err := readMember(pkl)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	loaded := map[string]pytorch.StorageInterface{}
	persistent := func(id any) (any, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() < 5 {
			return nil, fmt.Errorf("persistent id: storage tuple expected, got %T", id)
		}
		kind, _ := t.Get(0).(string)
		class, okC := t.Get(1).(pytorch.StorageClassInterface)
		key, okK := t.Get(2).(string)
		location, okL := t.Get(3).(string)
		size, okS := t.Get(4).(int)
		if kind != "storage" || !okC || !okK || !okL || !okS || size < 0 {
			return nil, fmt.Errorf("persistent id: malformed storage reference %v", id)
		}
		if s, ok := loaded[key]; ok {
			return s, nil
		}
		m, ok := members[key]
		if !ok {
			return nil, fmt.Errorf("storage %q: no such archive member", key)
		}
		elem := storageElemSize(class)
		if elem == 0 || uint64(size)*elem > m.UncompressedSize64 || m.UncompressedSize64 > maxMemberSize(m) {
			return nil, fmt.Errorf("storage %q: %d elements do not fit its %d-byte archive member", key, size, m.UncompressedSize64)
		}
		f, err := m.Open()
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		defer f.Close()
		s := class.New(size, location)
		if err := s.SetFromFileWithSize(f, size); err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		loaded[key] = s
		return s, nil
	}
	v, err = safeUnpickle(data, findTorchClass, persistent)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	return v, nil
}

// maxMemberSize bounds what a zip member may expand to: deflate cannot
// exceed a ratio of 1032, and stored members are their own size.
func maxMemberSize(f *zip.File) uint64 {
	if f.Method == zip.Store {
		return f.CompressedSize64
	}
	return min(f.CompressedSize64*1032+1024, maxFileSize)
}

func readMember(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > maxMemberSize(f) {
		return nil, fmt.Errorf("member %s declares %d bytes, more than it can hold", f.Name, f.UncompressedSize64)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(maxMemberSize(f))))
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", f.Name, err)
	}
	return b, nil
}

// decodePth reads torch.save(list of tuples of tensors): one positional
// sample per tuple (a bare tensor in the list is a one-input sample).
func decodePth(path string) (*Dataset, error) {
	v, err := loadTorch(path)
	if err != nil {
		return nil, err
	}
	var items []any
	switch x := v.(type) {
	case *types.List:
		items = *x
	case *types.Tuple:
		items = *x
	default:
		return nil, fmt.Errorf("pth: file holds %T, want a list of tuples of tensors", v)
	}
	ds := &Dataset{Format: FormatPth}
	for i, it := range items {
		var parts []any
		switch x := it.(type) {
		case *types.Tuple:
			parts = *x
		case *types.List:
			parts = *x
		case *pytorch.Tensor:
			parts = []any{x}
		default:
			return nil, fmt.Errorf("pth: sample %d: want a tuple of tensors, got %T", i, it)
		}
		s := Sample{Positional: []*tensor.Tensor{}}
		for j, p := range parts {
			pt, ok := p.(*pytorch.Tensor)
			if !ok {
				return nil, fmt.Errorf("pth: sample %d, input #%d: want a tensor, got %T", i, j, p)
			}
			t, err := torchTensor(pt)
			if err != nil {
				return nil, fmt.Errorf("pth: sample %d, input #%d: %w", i, j, err)
			}
			s.Positional = append(s.Positional, t)
		}
		ds.Samples = append(ds.Samples, s)
	}
	return ds, nil
}

// torchTensor copies a (possibly strided, offset) view out of its storage.
func torchTensor(pt *pytorch.Tensor) (*tensor.Tensor, error) {
	var (
		dt    tensor.DType
		data  []byte
		count int
	)
	le := binary.LittleEndian
	switch s := pt.Source.(type) {
	case *pytorch.FloatStorage:
		dt, count = tensor.Float, len(s.Data)
		data = make([]byte, 4*count)
		for i, v := range s.Data {
			le.PutUint32(data[4*i:], math.Float32bits(v))
		}
	case *pytorch.DoubleStorage:
		dt, count = tensor.Double, len(s.Data)
		data = make([]byte, 8*count)
		for i, v := range s.Data {
			le.PutUint64(data[8*i:], math.Float64bits(v))
		}
	case *pytorch.HalfStorage:
		dt, count = tensor.Float16, len(s.Data)
		data = make([]byte, 2*count)
		for i, v := range s.Data {
			le.PutUint16(data[2*i:], tensor.Float32ToFloat16(v))
		}
	case *pytorch.BFloat16Storage:
		dt, count = tensor.BFloat16, len(s.Data)
		data = make([]byte, 2*count)
		for i, v := range s.Data {
			le.PutUint16(data[2*i:], uint16(math.Float32bits(v)>>16))
		}
	case *pytorch.LongStorage:
		dt, count = tensor.Int64, len(s.Data)
		data = make([]byte, 8*count)
		for i, v := range s.Data {
			le.PutUint64(data[8*i:], uint64(v))
		}
	case *pytorch.IntStorage:
		dt, count = tensor.Int32, len(s.Data)
		data = make([]byte, 4*count)
		for i, v := range s.Data {
			le.PutUint32(data[4*i:], uint32(v))
		}
	case *pytorch.ShortStorage:
		dt, count = tensor.Int16, len(s.Data)
		data = make([]byte, 2*count)
		for i, v := range s.Data {
			le.PutUint16(data[2*i:], uint16(v))
		}
	case *pytorch.CharStorage:
		dt, count = tensor.Int8, len(s.Data)
		data = make([]byte, count)
		for i, v := range s.Data {
			data[i] = byte(v)
		}
	case *pytorch.ByteStorage:
		dt, count = tensor.Uint8, len(s.Data)
		data = append([]byte(nil), s.Data...)
	case *pytorch.BoolStorage:
		dt, count = tensor.Bool, len(s.Data)
		data = make([]byte, count)
		for i, v := range s.Data {
			if v {
				data[i] = 1
			}
		}
	default:
		return nil, fmt.Errorf("unsupported storage %T", pt.Source)
	}
	if len(pt.Size) != len(pt.Stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", pt.Size, pt.Stride)
	}
	shape := make([]int64, len(pt.Size))
	strides := make([]int64, len(pt.Size))
	for i := range pt.Size {
		shape[i], strides[i] = int64(pt.Size[i]), int64(pt.Stride[i])
		if shape[i] < 0 || strides[i] < 0 {
			return nil, fmt.Errorf("negative size %v or stride %v", pt.Size, pt.Stride)
		}
	}
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if pt.StorageOffset < 0 {
		return nil, errors.New("negative storage offset")
	}
	t := &tensor.Tensor{DType: dt, Shape: shape}
	if n == 0 {
		t.Data = []byte{}
		return t, nil
	}
	last := int64(pt.StorageOffset)
	for i := range shape {
		last += (shape[i] - 1) * strides[i]
	}
	if last >= int64(count) {
		return nil, fmt.Errorf("view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage",
			pt.StorageOffset, pt.Size, pt.Stride, last, count)
	}
	t.Data = gather(data, dt.Size(), shape, strides, int64(pt.StorageOffset))
	return t, nil
}
