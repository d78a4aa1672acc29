/* Opening an engine by backend name: the one place that knows which backends this build has, so the
 * exec client, calibration and benchmarks choose them the same way. */
#include <string.h>

#include "exec/engine.h"
#ifdef WIKV_HAVE_CUDA
#include "exec/cuda/engine_cuda.h"
#endif

int wk_engine_backend_built(const char *backend) {
    if (strcmp(backend, "cpu") == 0) return 1;
#ifdef WIKV_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0) return 1;
#endif
    return 0;
}

int wk_engine_open(const char *backend, const char *src, const wk_engine_opts *opts, wk_engine **out, wk_err *err) {
    if (!backend || strcmp(backend, "cpu") == 0) return wk_engine_cpu_open(src, opts, out, err);
#ifdef WIKV_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0) return wk_engine_cuda_open(src, opts, out, err);
#endif
    if (strcmp(backend, "cuda") == 0)
        return wk_err_set(err, WK_EUNSUPPORTED, "backend cuda: this build has no CUDA (nvcc was not found)");
    return wk_err_set(err, WK_EINVAL, "backend %s: unknown (cpu or cuda)", backend);
}
