/* Fuzz target: CacheGen chunk decoder into a 4-layer, 2-head, 64-token, 16-dim tensor. */
#include <stddef.h>
#include <stdint.h>

#include "kv/cachegen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wk_kv_tensor t;
    wk_err err;
    if (wk_kv_tensor_alloc(&t, 4, 2, 64, 16, &err)) return 0;
    (void)wk_cg_decode(data, size, &t, &err);
    wk_kv_tensor_free(&t);
    return 0;
}
