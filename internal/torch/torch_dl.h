// torch_dl.h: calls into libopeneas_torch.so through pointers that oet_dl_load resolves
// with dlsym, so nothing links against the shim (or libtorch) at build time.
#ifndef OPENEAS_TORCH_DL_H
#define OPENEAS_TORCH_DL_H
#include "shim/openeas_torch.h"

const char *oet_dl_load(const char *path);
const char *dl_torch_version(void);
int dl_cuda_available(void);
void dl_free(char *p);
int dl_get_num_threads(void);
void dl_set_num_threads(int n);
int dl_get_num_interop_threads(void);
char *dl_set_num_interop_threads(int n);
char *dl_load(const char *path, const char *device, int flags, oet_model **out);
void dl_free_model(oet_model *m);
char *dl_signature(oet_model *m, char **json_out);
char *dl_forward(oet_model *m, const oet_input *inputs, int n, oet_outputs **out);
int dl_outputs_count(const oet_outputs *o);
const oet_output *dl_outputs_at(const oet_outputs *o, int i);
void dl_free_outputs(oet_outputs *o);
char *dl_optimize(const char *in_path, const char *out_path, const char *passes, char **log_out);
#endif
