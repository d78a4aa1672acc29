/* Fuzz target: range decoder and stored frequency tables. Byte 0: alphabet size (1..64), byte 1: table bits;
 * then a stored table, then a range-coded stream of up to 4096 symbols interleaved with raw 7-bit fields. */
#include <stddef.h>
#include <stdint.h>

#include "kv/rangecoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int nsym = 1 + data[0] % WK_RC_MAX_SYMBOLS, bits = 1 + data[1] % WK_RC_MAX_TOTAL_BITS;
    wk_rbuf r;
    wk_rbuf_init(&r, data + 2, size - 2, "fuzz");
    wk_rc_table t;
    wk_err err;
    if (wk_rc_table_read(&t, nsym, bits, &r, &err)) return 0;
    wk_rc_dec d;
    if (wk_rc_dec_init(&d, data + 2 + r.pos, size - 2 - r.pos, &err)) return 0;
    for (int i = 0; i < 4096; i++) {
        int s = (i % 5 == 4) ? wk_rc_dec_bits(&d, 7, &err) : wk_rc_dec_get(&d, &t, &err);
        if (s < 0) break;
        if (i % 5 != 4 && (s >= nsym || wk_rc_freq(&t, s) == 0)) __builtin_trap(); /* decoder invariant */
    }
    return 0;
}
