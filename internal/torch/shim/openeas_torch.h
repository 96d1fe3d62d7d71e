/* openeas_torch.h: the C API of libopeneas_torch.so, OpenEAS's shim over libtorch.
 *
 * The shim is the only code that links against libtorch; eas-worker and blade dlopen it at
 * run time, so binaries that never serve TorchScript build and run without libtorch.
 *
 * Conventions: a function that can fail returns NULL on success or an error message that the
 * caller frees with oet_free. Element types use ONNX TensorProto numbering (1 float32,
 * 7 int64, ...), as internal/tensor does. Objects have one owner and one oet_free_* call.
 * A loaded model may run forward from several threads at once. */
#ifndef OPENEAS_TORCH_H
#define OPENEAS_TORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* OET_API_VERSION changes whenever a signature below changes; loaders refuse a mismatch. */
#define OET_API_VERSION 1

typedef struct oet_model oet_model;
typedef struct oet_outputs oet_outputs;

/* oet_input is one positional argument of forward: a dense little-endian row-major tensor. */
typedef struct {
  int32_t dtype;
  int32_t ndim;
  const int64_t *shape;
  const void *data;
  int64_t nbytes;
} oet_input;

/* oet_output is one flattened output tensor; its memory belongs to the oet_outputs. */
typedef struct {
  const char *name;
  int32_t dtype;
  int32_t ndim;
  const int64_t *shape;
  const void *data;
  int64_t nbytes;
} oet_output;

int oet_api_version(void);
/* oet_torch_version is libtorch's version ("1.13.1"); oet_cuda_available is 1 when the
 * library was built with CUDA and a device is visible. */
const char *oet_torch_version(void);
int oet_cuda_available(void);
void oet_free(char *p);

/* Threads are process-wide in libtorch. set_num_interop_threads works only before the
 * first inter-op parallel work; later calls return an error. */
int oet_get_num_threads(void);
void oet_set_num_threads(int n);
int oet_get_num_interop_threads(void);
char *oet_set_num_interop_threads(int n);

/* oet_load reads a TorchScript file onto device ("cpu" or "cuda") in eval mode. flags:
 * OET_LOAD_OPTIMIZE applies torch::jit::optimize_for_inference (freezing first). */
#define OET_LOAD_OPTIMIZE 1
char *oet_load(const char *path, const char *device, int flags, oet_model **out);
void oet_free_model(oet_model *m);

/* oet_signature describes forward as JSON:
 * {"inputs":[{"name":"x","type":"Tensor"}],"returns":"Tuple[Tensor, Tensor]",
 *  "outputs":[{"name":"output_0","type":"Tensor"},...] or null when the return type's
 *  layout is known only at run time (lists, dicts)}. *json_out is freed with oet_free. */
char *oet_signature(oet_model *m, char **json_out);

/* oet_forward runs forward on n positional inputs (copied onto the model's device when it
 * is not the CPU) and flattens the result: a tensor is "output_0"; tuple and list elements
 * are "output_<i>" (nested: "output_<i>_<j>"); dict entries take their keys (nested:
 * "<parent>.<key>"); int, float and bool values become 0-dim tensors; None is skipped. */
char *oet_forward(oet_model *m, const oet_input *inputs, int n, oet_outputs **out);
int oet_outputs_count(const oet_outputs *o);
const oet_output *oet_outputs_at(const oet_outputs *o, int i);
void oet_free_outputs(oet_outputs *o);

/* oet_optimize loads in_path, applies passes (a comma-separated list, in order) and saves
 * the result to out_path. Passes: "freeze" (eval, torch::jit::freeze: constants folded,
 * conv-bn folded, frozen-graph optimizations), "quantize_dynamic" (after freeze: every
 * aten::linear with a constant float weight becomes quantized::linear_dynamic with int8
 * per-tensor weights). *log_out (freed with oet_free) says what each pass changed. */
char *oet_optimize(const char *in_path, const char *out_path, const char *passes, char **log_out);

#ifdef __cplusplus
}
#endif
#endif
