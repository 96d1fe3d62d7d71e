#include <dlfcn.h>
#include <stddef.h>
#include "torch_dl.h"

// Set once by oet_dl_load (Go serialises Init); read-only afterwards.
static int (*p_api_version)(void);
static const char *(*p_torch_version)(void);
static int (*p_cuda_available)(void);
static void (*p_free)(char *);
static int (*p_get_num_threads)(void);
static void (*p_set_num_threads)(int);
static int (*p_get_num_interop_threads)(void);
static char *(*p_set_num_interop_threads)(int);
static char *(*p_load)(const char *, const char *, int, oet_model **);
static void (*p_free_model)(oet_model *);
static char *(*p_signature)(oet_model *, char **);
static char *(*p_forward)(oet_model *, const oet_input *, int, oet_outputs **);
static int (*p_outputs_count)(const oet_outputs *);
static const oet_output *(*p_outputs_at)(const oet_outputs *, int);
static void (*p_free_outputs)(oet_outputs *);
static char *(*p_optimize)(const char *, const char *, const char *, char **);

#define SYM(var, name)                                   \
  do {                                                   \
    *(void **)(&var) = dlsym(h, name);                   \
    if (!var) {                                          \
      dlclose(h);                                        \
      return "the library does not export " name;        \
    }                                                    \
  } while (0)

const char *oet_dl_load(const char *path) {
  // RTLD_GLOBAL is not needed: the shim links libtorch itself. The handle stays open for
  // the life of the process (libtorch cannot be unloaded safely).
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return dlerror();
  SYM(p_api_version, "oet_api_version");
  if (p_api_version() != OET_API_VERSION) {
    dlclose(h);
    return "the library implements another version of the openeas_torch API; rebuild it (scripts/build-torch-shim.sh)";
  }
  SYM(p_torch_version, "oet_torch_version");
  SYM(p_cuda_available, "oet_cuda_available");
  SYM(p_free, "oet_free");
  SYM(p_get_num_threads, "oet_get_num_threads");
  SYM(p_set_num_threads, "oet_set_num_threads");
  SYM(p_get_num_interop_threads, "oet_get_num_interop_threads");
  SYM(p_set_num_interop_threads, "oet_set_num_interop_threads");
  SYM(p_load, "oet_load");
  SYM(p_free_model, "oet_free_model");
  SYM(p_signature, "oet_signature");
  SYM(p_forward, "oet_forward");
  SYM(p_outputs_count, "oet_outputs_count");
  SYM(p_outputs_at, "oet_outputs_at");
  SYM(p_free_outputs, "oet_free_outputs");
  SYM(p_optimize, "oet_optimize");
  return NULL;
}

const char *dl_torch_version(void) { return p_torch_version(); }
int dl_cuda_available(void) { return p_cuda_available(); }
void dl_free(char *p) { p_free(p); }
int dl_get_num_threads(void) { return p_get_num_threads(); }
void dl_set_num_threads(int n) { p_set_num_threads(n); }
int dl_get_num_interop_threads(void) { return p_get_num_interop_threads(); }
char *dl_set_num_interop_threads(int n) { return p_set_num_interop_threads(n); }
char *dl_load(const char *path, const char *device, int flags, oet_model **out) { return p_load(path, device, flags, out); }
void dl_free_model(oet_model *m) { p_free_model(m); }
char *dl_signature(oet_model *m, char **json_out) { return p_signature(m, json_out); }
char *dl_forward(oet_model *m, const oet_input *inputs, int n, oet_outputs **out) { return p_forward(m, inputs, n, out); }
int dl_outputs_count(const oet_outputs *o) { return p_outputs_count(o); }
const oet_output *dl_outputs_at(const oet_outputs *o, int i) { return p_outputs_at(o, i); }
void dl_free_outputs(oet_outputs *o) { p_free_outputs(o); }
char *dl_optimize(const char *in_path, const char *out_path, const char *passes, char **log_out) {
  return p_optimize(in_path, out_path, passes, log_out);
}
