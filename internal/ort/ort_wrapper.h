// Small C helpers over the ONNX Runtime C API. cgo cannot call through the OrtApi
// function-pointer table, so each helper makes exactly one API call and returns its
// OrtStatus (NULL = success) for Go's statusToError to turn into an error.
#ifndef OPENEAS_ORT_WRAPPER_H
#define OPENEAS_ORT_WRAPPER_H

#include <stddef.h>
#include <stdint.h>
#include "onnxruntime_c_api.h"

// ort_load dlopens path and fetches the API table, asking for ORT_API_VERSION and
// falling back to older versions down to min_version. On failure it returns a
// static or dlerror() message; on success NULL, with *api_version set.
const char *ort_load(const char *path, uint32_t min_version, uint32_t *api_version);
const char *ort_version_string(void);

OrtErrorCode ort_status_code(OrtStatus *s);
const char *ort_status_message(OrtStatus *s);
void ort_release_status(OrtStatus *s);

OrtStatus *ort_create_env(const char *logid, OrtEnv **out);
OrtStatus *ort_create_cpu_memory_info(OrtMemoryInfo **out);
OrtStatus *ort_get_default_allocator(OrtAllocator **out);
OrtStatus *ort_allocator_free(OrtAllocator *a, void *p);

OrtStatus *ort_create_session_options(OrtSessionOptions **out);
void ort_release_session_options(OrtSessionOptions *o);
OrtStatus *ort_set_intra_op_threads(OrtSessionOptions *o, int n);
OrtStatus *ort_set_inter_op_threads(OrtSessionOptions *o, int n);
OrtStatus *ort_set_graph_optimization_level(OrtSessionOptions *o, int level);
OrtStatus *ort_set_execution_mode(OrtSessionOptions *o, int mode);
OrtStatus *ort_add_session_config_entry(OrtSessionOptions *o, const char *key, const char *value);
OrtStatus *ort_set_optimized_model_path(OrtSessionOptions *o, const char *path);
OrtStatus *ort_add_free_dimension_override_by_name(OrtSessionOptions *o, const char *name, int64_t value);

OrtStatus *ort_create_session(OrtEnv *env, const char *model_path, OrtSessionOptions *o, OrtSession **out);
void ort_release_session(OrtSession *s);
OrtStatus *ort_session_input_count(OrtSession *s, size_t *out);
OrtStatus *ort_session_output_count(OrtSession *s, size_t *out);
OrtStatus *ort_session_input_name(OrtSession *s, size_t i, OrtAllocator *a, char **out);
OrtStatus *ort_session_output_name(OrtSession *s, size_t i, OrtAllocator *a, char **out);
OrtStatus *ort_session_input_type_info(OrtSession *s, size_t i, OrtTypeInfo **out);
OrtStatus *ort_session_output_type_info(OrtSession *s, size_t i, OrtTypeInfo **out);

void ort_release_type_info(OrtTypeInfo *t);
OrtStatus *ort_onnx_type_from_type_info(const OrtTypeInfo *t, enum ONNXType *out);
// The returned info is owned by t; do not release it.
OrtStatus *ort_cast_type_info_to_tensor_info(const OrtTypeInfo *t, const OrtTensorTypeAndShapeInfo **out);
OrtStatus *ort_tensor_element_type(const OrtTensorTypeAndShapeInfo *i, ONNXTensorElementDataType *out);
OrtStatus *ort_dimensions_count(const OrtTensorTypeAndShapeInfo *i, size_t *out);
OrtStatus *ort_dimensions(const OrtTensorTypeAndShapeInfo *i, int64_t *dims, size_t n);
OrtStatus *ort_symbolic_dimensions(const OrtTensorTypeAndShapeInfo *i, const char **names, size_t n);
void ort_release_tensor_type_and_shape_info(OrtTensorTypeAndShapeInfo *i);

OrtStatus *ort_create_run_options(OrtRunOptions **out);
void ort_release_run_options(OrtRunOptions *r);
OrtStatus *ort_run_options_set_terminate(OrtRunOptions *r);
OrtStatus *ort_run(OrtSession *s, const OrtRunOptions *r,
                   const char *const *input_names, const OrtValue *const *inputs, size_t n_in,
                   const char *const *output_names, size_t n_out, OrtValue **outputs);

OrtStatus *ort_create_tensor_with_data(const OrtMemoryInfo *m, void *data, size_t data_len,
                                       const int64_t *shape, size_t rank, ONNXTensorElementDataType t,
                                       OrtValue **out);
OrtStatus *ort_create_tensor(OrtAllocator *a, const int64_t *shape, size_t rank,
                             ONNXTensorElementDataType t, OrtValue **out);
// ort_resized_string_element copies len bytes from src into element i of a string
// tensor (GetResizedStringTensorElementBuffer + memcpy), so strings may hold NUL bytes.
OrtStatus *ort_resized_string_element(OrtValue *v, size_t i, const char *src, size_t len);
void ort_release_value(OrtValue *v);
OrtStatus *ort_value_type(const OrtValue *v, enum ONNXType *out);
OrtStatus *ort_tensor_type_and_shape(const OrtValue *v, OrtTensorTypeAndShapeInfo **out);
OrtStatus *ort_tensor_mutable_data(OrtValue *v, void **out);
OrtStatus *ort_string_tensor_data_length(const OrtValue *v, size_t *out);
OrtStatus *ort_string_tensor_content(const OrtValue *v, void *s, size_t s_len, size_t *offsets, size_t n);

#endif
