// Package ort is OpenEAS's thin cgo layer over the ONNX Runtime C API.
//
// The library is dlopened from a path given to Init (mains find it with FindLibrary or
// take OPENEAS_ORT_LIB); nothing links against it at build time. Each C helper in
// ort_wrapper.c makes one API call, every OrtStatus goes through statusToError, and every
// object has one owner with an explicit New…/Close. Shapes and data lengths are checked in
// Go before C sees them.
//
// The header onnxruntime_c_api.h (and onnxruntime_ep_c_api.h, which it includes) is
// copied from github.com/yalue/onnxruntime_go@v1.27.0 and carries Microsoft's MIT licence
// notice; this package does not import onnxruntime_go.
package ort

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "ort_wrapper.h"
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

// minAPIVersion is the oldest C API table that has every call this package makes
// (GetResizedStringTensorElementBuffer arrived in 1.15).
const minAPIVersion = 15

// ErrNotInitialized is returned by NewSession before a successful Init.
var ErrNotInitialized = errors.New("ort: not initialized; call ort.Init with the ONNX Runtime library path")

// runtimeState is the process-wide ONNX Runtime: the API table and the one OrtEnv ORT
// allows per process. It is set once by Init under mu and never changed afterwards.
type runtimeState struct {
	mu         sync.Mutex
	path       string
	apiVersion uint32
	env        *C.OrtEnv
	memInfo    *C.OrtMemoryInfo
	alloc      *C.OrtAllocator // ORT's default CPU allocator; owned by ORT, never freed
}

var lib runtimeState

// Init loads the ONNX Runtime shared library at libraryPath and creates the process's
// OrtEnv. Calling it again with the same path is a no-op; a different path after a
// successful Init is an error (a process can host only one ONNX Runtime).
func Init(libraryPath string) error {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.env != nil {
		if libraryPath == lib.path {
			return nil
		}
		return fmt.Errorf("ort: already initialized with %s; cannot switch to %s", lib.path, libraryPath)
	}
	if libraryPath == "" {
		return errors.New("ort: empty ONNX Runtime library path")
	}
	cpath := C.CString(libraryPath)
	defer C.free(unsafe.Pointer(cpath))
	var version C.uint32_t
	if msg := C.ort_load(cpath, minAPIVersion, &version); msg != nil {
		return fmt.Errorf("ort: load ONNX Runtime library %s: %s", libraryPath, C.GoString(msg))
	}
	logid := C.CString("openeas")
	defer C.free(unsafe.Pointer(logid))
	var env *C.OrtEnv
	if err := statusToError(C.ort_create_env(logid, &env)); err != nil {
		return fmt.Errorf("ort: create environment (library %s): %w", libraryPath, err)
	}
	var mem *C.OrtMemoryInfo
	if err := statusToError(C.ort_create_cpu_memory_info(&mem)); err != nil {
		return fmt.Errorf("ort: create CPU memory info (library %s): %w", libraryPath, err)
	}
	var alloc *C.OrtAllocator
	if err := statusToError(C.ort_get_default_allocator(&alloc)); err != nil {
		return fmt.Errorf("ort: get default allocator (library %s): %w", libraryPath, err)
	}
	lib.path, lib.apiVersion, lib.env, lib.memInfo, lib.alloc = libraryPath, uint32(version), env, mem, alloc
	return nil
}

// initialized reports whether Init succeeded. After that the fields of lib never change,
// so callers may read lib without the lock.
func initialized() bool {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	return lib.env != nil
}

// Version is the loaded library's version string ("1.30.0"), or "" before Init.
func Version() string {
	if !initialized() {
		return ""
	}
	return C.GoString(C.ort_version_string())
}

// APIVersion is the C API table version in use (ORT_API_VERSION of the header, or an
// older one when the library predates it); 0 before Init.
func APIVersion() uint32 {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	return lib.apiVersion
}

// FindLibrary returns the first existing of exeDir/libonnxruntime.so.1,
// exeDir/libonnxruntime.so and exeDir/../.cache/libonnxruntime.so, else
// "libonnxruntime.so.1" for the system's dynamic loader to find.
func FindLibrary(exeDir string) string {
	if exeDir != "" {
		for _, p := range []string{
			filepath.Join(exeDir, "libonnxruntime.so.1"),
			filepath.Join(exeDir, "libonnxruntime.so"),
			filepath.Join(exeDir, "..", ".cache", "libonnxruntime.so"),
		} {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
	}
	return "libonnxruntime.so.1"
}

// ErrorCode is ONNX Runtime's OrtErrorCode.
type ErrorCode int

// Error is a failed ONNX Runtime call.
type Error struct {
	Code ErrorCode
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("onnxruntime: %s (code %d)", e.Msg, e.Code)
}

// statusToError converts and releases an OrtStatus; nil status means success.
func statusToError(s *C.OrtStatus) error {
	if s == nil {
		return nil
	}
	e := &Error{Code: ErrorCode(C.ort_status_code(s)), Msg: C.GoString(C.ort_status_message(s))}
	C.ort_release_status(s)
	return e
}
