/* Fuzz target: .wkv KV tensor file parser. */
#include <stddef.h>
#include <stdint.h>

#include "kv/kv_tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wk_kv_tensor t;
    wk_err err;
    if (wk_kv_tensor_parse(data, size, "fuzz", &t, &err) == 0) wk_kv_tensor_free(&t);
    return 0;
}
