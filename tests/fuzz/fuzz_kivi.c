/* Fuzz target: KIVI decoder. Byte 0 picks bits (2/4/8), byte 1 the token count (0..63); the rest is the block,
 * decoded (with head_dim 16, group 8, residual 16) whatever its length. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kv/kivi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const int bits[4] = {2, 4, 8, 3};
    wk_kivi_params p = {bits[data[0] & 3], 8, 16};
    int tokens = data[1] & 63, D = 16;
    uint16_t *k = malloc((size_t)tokens * D * 2 + 2), *v = malloc((size_t)tokens * D * 2 + 2);
    wk_err err;
    if (k && v) (void)wk_kivi_decode_head(&p, tokens, D, data + 2, size - 2, k, v, &err);
    free(k);
    free(v);
    return 0;
}
