/* Fuzz target: tokenizer.json loading; when it loads, encode a fixed text and parts of the input
 * itself, and decode the result (including ids near the vocabulary edge). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wk_tokenizer *t;
    wk_err err;
    if (wk_tokenizer_parse((const char *)data, size, "fuzz.json", &t, &err) != 0) return 0;
    const char *texts[2] = {"Hello world's 123 \xe4\xbd\xa0\n\n <s>x", (const char *)data};
    size_t lens[2] = {strlen(texts[0]), size < 256 ? size : 256};
    for (int k = 0; k < 2; k++) {
        int32_t *ids;
        size_t n;
        if (wk_tokenizer_encode(t, texts[k], lens[k], WK_TOK_ADD_SPECIAL, &ids, &n, &err) == 0) {
            char *s;
            size_t len;
            if (wk_tokenizer_decode(t, ids, n, 0, &s, &len, &err) == 0) free(s);
            free(ids);
        }
    }
    int32_t edge[2] = {wk_tokenizer_vocab_size(t) - 1, wk_tokenizer_vocab_size(t)};
    char *s;
    size_t len;
    if (wk_tokenizer_decode(t, edge, 2, 0, &s, &len, &err) == 0) free(s);
    wk_tokenizer_free(t);
    return 0;
}
