/* Fuzz target: WiKV semantic batch decoder on a 3-layer, 2-head, 32-token, 16-dim tensor. Input: u32 n (little
 * endian) then two batches back to back, the first n bytes long: both are decoded in order, so a refinement
 * can follow its base. */
#include <stddef.h>
#include <stdint.h>

#include "kv/semantic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (n > size - 4) n = size - 4;
    wk_kv_tensor t;
    wk_sem_map m;
    wk_err err;
    if (wk_kv_tensor_alloc(&t, 3, 2, 32, 16, &err)) return 0;
    if (wk_sem_map_alloc(&m, 3, 2, 32, &err) == 0) {
        (void)wk_sem_decode_batch(data + 4, n, &t, &m, &err);
        (void)wk_sem_decode_batch(data + 4 + n, size - 4 - n, &t, &m, &err);
        wk_sem_map_free(&m);
    }
    wk_kv_tensor_free(&t);
    return 0;
}
