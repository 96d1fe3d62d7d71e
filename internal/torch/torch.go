// Package torch is OpenEAS's thin cgo layer over libopeneas_torch.so, the C shim over
// libtorch (its source and API are in shim/; scripts/build-torch-shim.sh builds it).
//
// The shim is dlopened from a path given to Init (mains find it with FindShim or take
// OPENEAS_TORCH_SHIM); nothing links against it or libtorch at build time, so every binary
// builds on machines without libtorch. Each C helper in torch_dl.c makes one shim call,
// every error string goes through takeError, and every object has one owner with an
// explicit Load…/Close.
package torch

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "torch_dl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"
)

// ShimName is the shim's file name; make build puts it in bin/ next to the binaries.
const ShimName = "libopeneas_torch.so"

// ErrNotInitialized is returned before a successful Init.
var ErrNotInitialized = errors.New("torch: not initialized; call torch.Init with the path of " + ShimName)

// InstallHint says what a machine without the shim needs; errors about a missing shim end with it.
const InstallHint = "install libtorch (apt-get install libtorch-dev libopenblas0-pthread) and build the shim " +
	"(make build, or scripts/build-torch-shim.sh)"

// lib is the process-wide shim: set once by Init under mu, never changed afterwards.
var lib struct {
	mu   sync.Mutex
	path string
}

// Init loads the shim at shimPath. Calling it again with the same path is a no-op; a
// different path after a successful Init is an error (a process hosts one libtorch).
func Init(shimPath string) error {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.path != "" {
		if shimPath == lib.path {
			return nil
		}
		return fmt.Errorf("torch: already initialized with %s; cannot switch to %s", lib.path, shimPath)
	}
	if shimPath == "" {
		return errors.New("torch: empty shim path; " + InstallHint)
	}
	cpath := C.CString(shimPath)
	defer C.free(unsafe.Pointer(cpath))
	if msg := C.oet_dl_load(cpath); msg != nil {
		return fmt.Errorf("torch: load %s: %s; %s", shimPath, C.GoString(msg), InstallHint)
	}
	lib.path = shimPath
	return nil
}

func initialized() bool {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	return lib.path != ""
}

// Version is the loaded libtorch's version ("1.13.1"), or "" before Init.
func Version() string {
	if !initialized() {
		return ""
	}
	return C.GoString(C.dl_torch_version())
}

// CUDAAvailable reports whether the loaded libtorch was built with CUDA and sees a device.
func CUDAAvailable() bool {
	return initialized() && C.dl_cuda_available() != 0
}

// Threads is libtorch's intra-op thread count (process-wide); 0 before Init.
func Threads() int {
	if !initialized() {
		return 0
	}
	return int(C.dl_get_num_threads())
}

// SetThreads sets libtorch's intra-op thread count for the whole process; n <= 0 keeps it.
func SetThreads(n int) error {
	if !initialized() {
		return ErrNotInitialized
	}
	C.dl_set_num_threads(C.int(n))
	return nil
}

// SetInteropThreads sets the inter-op pool size. libtorch accepts it only before the
// first inter-op parallel work in the process.
func SetInteropThreads(n int) error {
	if !initialized() {
		return ErrNotInitialized
	}
	return takeError(C.dl_set_num_interop_threads(C.int(n)), "set inter-op threads")
}

// FindShim returns the first existing of exeDir/libopeneas_torch.so and
// exeDir/../.cache/torch-shim/libopeneas_torch.so, else "" (no shim: callers report
// InstallHint).
func FindShim(exeDir string) string {
	if exeDir == "" {
		return ""
	}
	for _, p := range []string{
		filepath.Join(exeDir, ShimName),
		filepath.Join(exeDir, "..", ".cache", "torch-shim", ShimName),
	} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// Error is a failure reported by libtorch (through the shim).
type Error struct {
	Op  string // what was being done: "load", "forward", ...
	Msg string // libtorch's message, without its C++ backtrace
}

func (e *Error) Error() string { return "libtorch " + e.Op + ": " + e.Msg }

// takeError converts and frees a shim error string; nil means success.
func takeError(msg *C.char, op string) error {
	if msg == nil {
		return nil
	}
	e := &Error{Op: op, Msg: C.GoString(msg)}
	C.dl_free(msg)
	return e
}

// takeString copies and frees a shim-allocated string.
func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.dl_free(s)
	return C.GoString(s)
}

// Optimize loads the TorchScript file in, applies passes in order ("freeze",
// "quantize_dynamic"; see shim/openeas_torch.h) and saves the result to out. It returns
// the shim's account of what each pass changed.
func Optimize(in, out string, passes []string) (string, error) {
	if !initialized() {
		return "", ErrNotInitialized
	}
	list := ""
	for i, p := range passes {
		if i > 0 {
			list += ","
		}
		list += p
	}
	cin, cout, cpasses := C.CString(in), C.CString(out), C.CString(list)
	defer C.free(unsafe.Pointer(cin))
	defer C.free(unsafe.Pointer(cout))
	defer C.free(unsafe.Pointer(cpasses))
	var log *C.char
	err := takeError(C.dl_optimize(cin, cout, cpasses, &log), "optimize "+filepath.Base(in))
	return takeString(log), err
}
