/* Fuzz target: config.json parsing; an accepted config must satisfy the invariants the engine sizes
 * its buffers from. */
#include <stdint.h>
#include <stdlib.h>

#include "exec/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wk_model_config c;
    wk_err err;
    if (wk_model_config_parse((const char *)data, size, "config.json", &c, &err) != 0) return 0;
    if (c.dim < 1 || c.n_layers < 1 || c.n_kv_heads < 1 || c.n_heads % c.n_kv_heads != 0 || c.head_dim % 2 != 0 ||
        c.vocab_size < 1 || c.hidden_dim < 1)
        abort();
    (void)wk_model_config_n_params(&c);
    return 0;
}
