#include <dlfcn.h>
#include <string.h>
#include "ort_wrapper.h"

// Set once by ort_load (Go serialises Init); read-only afterwards.
static const OrtApi *api = NULL;
static const OrtApiBase *api_base = NULL;

typedef const OrtApiBase *(*get_api_base_fn)(void);

const char *ort_load(const char *path, uint32_t min_version, uint32_t *api_version) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return dlerror();
  get_api_base_fn get = (get_api_base_fn)dlsym(h, "OrtGetApiBase");
  if (!get) {
    dlclose(h);
    return "the library does not export OrtGetApiBase";
  }
  const OrtApiBase *base = get();
  if (!base) {
    dlclose(h);
    return "OrtGetApiBase returned NULL";
  }
  // An older library rejects newer API versions; every call we use exists since min_version.
  for (uint32_t v = ORT_API_VERSION; v >= min_version; v--) {
    const OrtApi *a = base->GetApi(v);
    if (a) {
      api = a;
      api_base = base;
      *api_version = v;
      return NULL;  // the handle stays open for the life of the process
    }
  }
  dlclose(h);
  return "the library supports none of the C API versions this build can use";
}

const char *ort_version_string(void) { return api_base ? api_base->GetVersionString() : ""; }

OrtErrorCode ort_status_code(OrtStatus *s) { return api->GetErrorCode(s); }
const char *ort_status_message(OrtStatus *s) { return api->GetErrorMessage(s); }
void ort_release_status(OrtStatus *s) { api->ReleaseStatus(s); }

OrtStatus *ort_create_env(const char *logid, OrtEnv **out) {
  return api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, logid, out);
}
OrtStatus *ort_create_cpu_memory_info(OrtMemoryInfo **out) {
  return api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, out);
}
OrtStatus *ort_get_default_allocator(OrtAllocator **out) { return api->GetAllocatorWithDefaultOptions(out); }
OrtStatus *ort_allocator_free(OrtAllocator *a, void *p) { return api->AllocatorFree(a, p); }

OrtStatus *ort_create_session_options(OrtSessionOptions **out) { return api->CreateSessionOptions(out); }
void ort_release_session_options(OrtSessionOptions *o) { api->ReleaseSessionOptions(o); }
OrtStatus *ort_set_intra_op_threads(OrtSessionOptions *o, int n) { return api->SetIntraOpNumThreads(o, n); }
OrtStatus *ort_set_inter_op_threads(OrtSessionOptions *o, int n) { return api->SetInterOpNumThreads(o, n); }
OrtStatus *ort_set_graph_optimization_level(OrtSessionOptions *o, int level) {
  return api->SetSessionGraphOptimizationLevel(o, (GraphOptimizationLevel)level);
}
OrtStatus *ort_set_execution_mode(OrtSessionOptions *o, int mode) {
  return api->SetSessionExecutionMode(o, (ExecutionMode)mode);
}
OrtStatus *ort_add_session_config_entry(OrtSessionOptions *o, const char *key, const char *value) {
  return api->AddSessionConfigEntry(o, key, value);
}
OrtStatus *ort_set_optimized_model_path(OrtSessionOptions *o, const char *path) {
  return api->SetOptimizedModelFilePath(o, path);
}
OrtStatus *ort_add_free_dimension_override_by_name(OrtSessionOptions *o, const char *name, int64_t value) {
  return api->AddFreeDimensionOverrideByName(o, name, value);
}

OrtStatus *ort_create_session(OrtEnv *env, const char *model_path, OrtSessionOptions *o, OrtSession **out) {
  return api->CreateSession(env, model_path, o, out);
}
void ort_release_session(OrtSession *s) { api->ReleaseSession(s); }
OrtStatus *ort_session_input_count(OrtSession *s, size_t *out) { return api->SessionGetInputCount(s, out); }
OrtStatus *ort_session_output_count(OrtSession *s, size_t *out) { return api->SessionGetOutputCount(s, out); }
OrtStatus *ort_session_input_name(OrtSession *s, size_t i, OrtAllocator *a, char **out) {
  return api->SessionGetInputName(s, i, a, out);
}
OrtStatus *ort_session_output_name(OrtSession *s, size_t i, OrtAllocator *a, char **out) {
  return api->SessionGetOutputName(s, i, a, out);
}
OrtStatus *ort_session_input_type_info(OrtSession *s, size_t i, OrtTypeInfo **out) {
  return api->SessionGetInputTypeInfo(s, i, out);
}
OrtStatus *ort_session_output_type_info(OrtSession *s, size_t i, OrtTypeInfo **out) {
  return api->SessionGetOutputTypeInfo(s, i, out);
}

void ort_release_type_info(OrtTypeInfo *t) { api->ReleaseTypeInfo(t); }
OrtStatus *ort_onnx_type_from_type_info(const OrtTypeInfo *t, enum ONNXType *out) {
  return api->GetOnnxTypeFromTypeInfo(t, out);
}
OrtStatus *ort_cast_type_info_to_tensor_info(const OrtTypeInfo *t, const OrtTensorTypeAndShapeInfo **out) {
  return api->CastTypeInfoToTensorInfo(t, out);
}
OrtStatus *ort_tensor_element_type(const OrtTensorTypeAndShapeInfo *i, ONNXTensorElementDataType *out) {
  return api->GetTensorElementType(i, out);
}
OrtStatus *ort_dimensions_count(const OrtTensorTypeAndShapeInfo *i, size_t *out) {
  return api->GetDimensionsCount(i, out);
}
OrtStatus *ort_dimensions(const OrtTensorTypeAndShapeInfo *i, int64_t *dims, size_t n) {
  return api->GetDimensions(i, dims, n);
}
OrtStatus *ort_symbolic_dimensions(const OrtTensorTypeAndShapeInfo *i, const char **names, size_t n) {
  return api->GetSymbolicDimensions(i, names, n);
}
void ort_release_tensor_type_and_shape_info(OrtTensorTypeAndShapeInfo *i) {
  api->ReleaseTensorTypeAndShapeInfo(i);
}

OrtStatus *ort_create_run_options(OrtRunOptions **out) { return api->CreateRunOptions(out); }
void ort_release_run_options(OrtRunOptions *r) { api->ReleaseRunOptions(r); }
OrtStatus *ort_run_options_set_terminate(OrtRunOptions *r) { return api->RunOptionsSetTerminate(r); }
OrtStatus *ort_run(OrtSession *s, const OrtRunOptions *r,
                   const char *const *input_names, const OrtValue *const *inputs, size_t n_in,
                   const char *const *output_names, size_t n_out, OrtValue **outputs) {
  return api->Run(s, r, input_names, inputs, n_in, output_names, n_out, outputs);
}

OrtStatus *ort_create_tensor_with_data(const OrtMemoryInfo *m, void *data, size_t data_len,
                                       const int64_t *shape, size_t rank, ONNXTensorElementDataType t,
                                       OrtValue **out) {
  return api->CreateTensorWithDataAsOrtValue(m, data, data_len, shape, rank, t, out);
}
OrtStatus *ort_create_tensor(OrtAllocator *a, const int64_t *shape, size_t rank,
                             ONNXTensorElementDataType t, OrtValue **out) {
  return api->CreateTensorAsOrtValue(a, shape, rank, t, out);
}
OrtStatus *ort_resized_string_element(OrtValue *v, size_t i, const char *src, size_t len) {
  char *dst = NULL;
  OrtStatus *s = api->GetResizedStringTensorElementBuffer(v, i, len, &dst);
  if (s) return s;
  if (len > 0) memcpy(dst, src, len);
  return NULL;
}
void ort_release_value(OrtValue *v) { api->ReleaseValue(v); }
OrtStatus *ort_value_type(const OrtValue *v, enum ONNXType *out) { return api->GetValueType(v, out); }
OrtStatus *ort_tensor_type_and_shape(const OrtValue *v, OrtTensorTypeAndShapeInfo **out) {
  return api->GetTensorTypeAndShape(v, out);
}
OrtStatus *ort_tensor_mutable_data(OrtValue *v, void **out) { return api->GetTensorMutableData(v, out); }
OrtStatus *ort_string_tensor_data_length(const OrtValue *v, size_t *out) {
  return api->GetStringTensorDataLength(v, out);
}
OrtStatus *ort_string_tensor_content(const OrtValue *v, void *s, size_t s_len, size_t *offsets, size_t n) {
  return api->GetStringTensorContent(v, s, s_len, offsets, n);
}
