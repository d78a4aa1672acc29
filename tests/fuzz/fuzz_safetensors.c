/* Fuzz target: safetensors header parsing, then conversion of every tensor that parsed (reads its
 * whole data range, so an out-of-bounds offset would be caught by ASan). */
#include <stdint.h>
#include <stdlib.h>

#include "exec/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wk_safetensors st;
    wk_err err;
    if (wk_st_parse(data, size, "fuzz.safetensors", &st, &err) != 0) return 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const wk_st_tensor *t = &st.tensors[i];
        if (t->numel > (1 << 20)) continue;
        float *out = malloc(((size_t)t->numel + 1) * sizeof *out);
        if (out) (void)wk_st_to_f32(&st, t, out, &err);
        free(out);
        (void)wk_st_find(&st, t->name);
    }
    wk_st_close(&st);
    return 0;
}
