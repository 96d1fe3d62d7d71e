package ort

/*
#include <stdlib.h>
#include "ort_wrapper.h"
*/
import "C"

import (
	"fmt"
	"maps"
	"slices"
	"unsafe"

	"github.com/openeas/openeas/internal/processor"
)

// SessionOptions are the settings applied when a session is created. Zero values keep
// ONNX Runtime's defaults.
type SessionOptions struct {
	IntraOpThreads, InterOpThreads int
	// GraphOptimizationLevel: "", "disable", "basic", "extended", "all".
	GraphOptimizationLevel string
	// ExecutionMode: "", "sequential", "parallel".
	ExecutionMode string
	// AllowSpinning sets session.intra_op.allow_spinning and session.inter_op.allow_spinning.
	AllowSpinning *bool
	// ConfigEntries are added verbatim (AddSessionConfigEntry), after AllowSpinning, so an
	// explicit entry wins.
	ConfigEntries map[string]string
	// OptimizedModelPath makes ORT write its optimized graph there (offline optimization).
	OptimizedModelPath string
	// FreeDimensionOverrides fixes symbolic dimensions by name (AddFreeDimensionOverrideByName).
	FreeDimensionOverrides map[string]int64
}

// OptionsFromRuntime maps a bundle's runtime settings onto session options.
func OptionsFromRuntime(r processor.Runtime) SessionOptions {
	return SessionOptions{
		IntraOpThreads:         r.IntraOpThreads,
		InterOpThreads:         r.InterOpThreads,
		GraphOptimizationLevel: r.GraphOptimizationLevel,
		ExecutionMode:          r.ExecutionMode,
		AllowSpinning:          r.AllowSpinning,
		ConfigEntries:          maps.Clone(r.ConfigEntries),
	}
}

var graphOptLevels = map[string]C.int{
	"disable":  C.ORT_DISABLE_ALL,
	"basic":    C.ORT_ENABLE_BASIC,
	"extended": C.ORT_ENABLE_EXTENDED,
	"all":      C.ORT_ENABLE_ALL,
}

var executionModes = map[string]C.int{
	"sequential": C.ORT_SEQUENTIAL,
	"parallel":   C.ORT_PARALLEL,
}

// validate rejects settings ORT would misread, naming the field.
func (o SessionOptions) validate() error {
	if o.IntraOpThreads < 0 {
		return fmt.Errorf("ort: intra_op_threads %d: must be >= 0", o.IntraOpThreads)
	}
	if o.InterOpThreads < 0 {
		return fmt.Errorf("ort: inter_op_threads %d: must be >= 0", o.InterOpThreads)
	}
	if _, ok := graphOptLevels[o.GraphOptimizationLevel]; o.GraphOptimizationLevel != "" && !ok {
		return fmt.Errorf("ort: graph_optimization_level %q: want one of disable, basic, extended, all", o.GraphOptimizationLevel)
	}
	if _, ok := executionModes[o.ExecutionMode]; o.ExecutionMode != "" && !ok {
		return fmt.Errorf("ort: execution_mode %q: want sequential or parallel", o.ExecutionMode)
	}
	for k := range o.ConfigEntries {
		if k == "" {
			return fmt.Errorf("ort: config_entries: empty key")
		}
	}
	for name, v := range o.FreeDimensionOverrides {
		if name == "" || v < 0 {
			return fmt.Errorf("ort: free dimension override %q=%d: want a name and a size >= 0", name, v)
		}
	}
	return nil
}

// newCOptions builds an OrtSessionOptions; the caller releases it.
func (o SessionOptions) newCOptions() (*C.OrtSessionOptions, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	var opts *C.OrtSessionOptions
	if err := statusToError(C.ort_create_session_options(&opts)); err != nil {
		return nil, fmt.Errorf("ort: create session options: %w", err)
	}
	if err := o.apply(opts); err != nil {
		C.ort_release_session_options(opts)
		return nil, err
	}
	return opts, nil
}

func (o SessionOptions) apply(opts *C.OrtSessionOptions) error {
	if o.IntraOpThreads > 0 {
		if err := statusToError(C.ort_set_intra_op_threads(opts, C.int(o.IntraOpThreads))); err != nil {
			return fmt.Errorf("ort: set intra_op_threads %d: %w", o.IntraOpThreads, err)
		}
	}
	if o.InterOpThreads > 0 {
		if err := statusToError(C.ort_set_inter_op_threads(opts, C.int(o.InterOpThreads))); err != nil {
			return fmt.Errorf("ort: set inter_op_threads %d: %w", o.InterOpThreads, err)
		}
	}
	if lvl, ok := graphOptLevels[o.GraphOptimizationLevel]; ok {
		if err := statusToError(C.ort_set_graph_optimization_level(opts, lvl)); err != nil {
			return fmt.Errorf("ort: set graph_optimization_level %q: %w", o.GraphOptimizationLevel, err)
		}
	}
	if mode, ok := executionModes[o.ExecutionMode]; ok {
		if err := statusToError(C.ort_set_execution_mode(opts, mode)); err != nil {
			return fmt.Errorf("ort: set execution_mode %q: %w", o.ExecutionMode, err)
		}
	}
	if o.AllowSpinning != nil {
		v := "0"
		if *o.AllowSpinning {
			v = "1"
		}
		for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
			if err := addConfigEntry(opts, k, v); err != nil {
				return err
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.ConfigEntries)) {
		if err := addConfigEntry(opts, k, o.ConfigEntries[k]); err != nil {
			return err
		}
	}
	if o.OptimizedModelPath != "" {
		p := C.CString(o.OptimizedModelPath)
		err := statusToError(C.ort_set_optimized_model_path(opts, p))
		C.free(unsafe.Pointer(p))
		if err != nil {
			return fmt.Errorf("ort: set optimized model path %s: %w", o.OptimizedModelPath, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(o.FreeDimensionOverrides)) {
		n := C.CString(name)
		err := statusToError(C.ort_add_free_dimension_override_by_name(opts, n, C.int64_t(o.FreeDimensionOverrides[name])))
		C.free(unsafe.Pointer(n))
		if err != nil {
			return fmt.Errorf("ort: free dimension override %q: %w", name, err)
		}
	}
	return nil
}

func addConfigEntry(opts *C.OrtSessionOptions, key, value string) error {
	k, v := C.CString(key), C.CString(value)
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(v))
	if err := statusToError(C.ort_add_session_config_entry(opts, k, v)); err != nil {
		return fmt.Errorf("ort: session config entry %q=%q: %w", key, value, err)
	}
	return nil
}
