/* Writes the seed corpora of the KV fuzz targets (valid encoded samples of the shapes each target decodes):
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -I. tests/fuzz/gen_kv_corpus.c core/err.c core/crc32c.c core/rng.c \
 *      kv/[a-z]*.c -lm -o /tmp/g
 *   /tmp/g tests/fuzz/corpus */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/cachegen.h"
#include "kv/kivi.h"
#include "kv/rangecoder.h"
#include "kv/semantic.h"

static void put(const char *dir, const char *name, const uint8_t *a, size_t la, const uint8_t *b, size_t lb) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, la, f) != la || (lb && fwrite(b, 1, lb, f) != lb)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void synth(wk_kv_tensor *t, int L, int H, int T, int D) {
    wk_err err;
    wk_kv_synth_params sp = wk_kv_synth_defaults(3);
    if (wk_kv_tensor_alloc(t, L, H, T, D, &err) || wk_kv_tensor_synth(t, &sp, &err)) exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *root = argv[1];
    char dir[1024];
    wk_err err;
    /* kv_tensor */
    wk_kv_tensor t;
    synth(&t, 2, 1, 5, 8);
    uint8_t *buf;
    size_t len;
    snprintf(dir, sizeof dir, "%s/kv_tensor", root);
    if (wk_kv_tensor_serialize(&t, &buf, &len, &err)) return 1;
    put(dir, "small.wkv", buf, len, NULL, 0);
    free(buf);
    wk_kv_tensor_free(&t);
    /* kivi: header bytes (bits selector, tokens) + block */
    snprintf(dir, sizeof dir, "%s/kivi", root);
    synth(&t, 1, 1, 40, 16);
    for (int sel = 0; sel < 3; sel++) {
        int bits = sel == 0 ? 2 : sel == 1 ? 4 : 8, tokens = sel == 2 ? 10 : 40;
        wk_kivi_params p = {bits, 8, 16};
        uint8_t *blk = malloc((size_t)wk_kivi_bytes(&p, tokens, 16) + 2);
        blk[0] = (uint8_t)sel;
        blk[1] = (uint8_t)tokens;
        if (wk_kivi_encode_head(&p, tokens, 16, t.k, t.v, blk + 2, (size_t)wk_kivi_bytes(&p, tokens, 16), &len, &err))
            return 1;
        char name[32];
        snprintf(name, sizeof name, "b%d_t%d", bits, tokens);
        put(dir, name, blk, len + 2, NULL, 0);
        free(blk);
    }
    wk_kv_tensor_free(&t);
    /* rangecoder: nsym, bits, table, stream */
    snprintf(dir, sizeof dir, "%s/rangecoder", root);
    {
        uint64_t counts[31] = {0};
        uint8_t syms[300];
        for (int i = 0; i < 300; i++) syms[i] = (uint8_t)((i * 7 + i / 13) % 31 % ((i % 3) + 9)), counts[syms[i]]++;
        wk_rc_table tab;
        if (wk_rc_table_from_counts(&tab, counts, 31, 12, &err)) return 1;
        wk_wbuf w;
        wk_wbuf_init(&w);
        wk_wbuf_u8(&w, 31 - 1);
        wk_wbuf_u8(&w, 12 - 1);
        wk_rc_table_write(&tab, &w);
        wk_rc_enc e;
        wk_rc_enc_init(&e, &w);
        for (int i = 0; i < 300; i++) {
            if (i % 5 == 4) wk_rc_enc_bits(&e, (uint32_t)i & 127, 7);
            else wk_rc_enc_put(&e, &tab, syms[i]);
        }
        wk_rc_enc_finish(&e);
        put(dir, "mixed", w.data, w.len, NULL, 0);
        wk_wbuf_free(&w);
    }
    /* cachegen: 4x2x64x16 tensor, several levels and ranges */
    snprintf(dir, sizeof dir, "%s/cachegen", root);
    synth(&t, 4, 2, 64, 16);
    for (int i = 0; i < 4; i++) {
        wk_cg_params p = wk_cg_defaults();
        p.level = i;
        p.delta = i & 1;
        if (wk_cg_encode(&p, &t, i % 2, 2 + i % 3 - (i == 3), 8 * i, 16, &buf, &len, NULL, &err)) return 1;
        char name[32];
        snprintf(name, sizeof name, "chunk%d", i);
        put(dir, name, buf, len, NULL, 0);
        free(buf);
    }
    wk_kv_tensor_free(&t);
    /* semantic: 3x2x32x16; u32 length + base batch + refinement (or a second base) */
    snprintf(dir, sizeof dir, "%s/semantic", root);
    synth(&t, 3, 2, 32, 16);
    {
        int N = 3 * 2 * 32;
        float imp[3 * 2 * 32];
        uint32_t order[3 * 2 * 32], sent[64];
        if (wk_sem_synth_importance(1, 3, 2, 32, imp, &err)) return 1;
        wk_sem_suffix_sum(imp, 3, 2, 32);
        if (wk_sem_order(imp, 3, 2, 32, order, &err)) return 1;
        for (int v = 0; v < 3; v++) {
            wk_sem_params p = wk_sem_defaults(3);
            p.delta = v == 1;
            p.reorder = v == 2;
            uint8_t *b0, *b1;
            size_t l0, l1;
            if (wk_sem_encode_batch(&p, &t, order, 64, 0, &b0, &l0, sent, NULL, &err)) return 1;
            if (v == 1) {
                if (wk_sem_encode_batch(&p, &t, order + 64, N - 64, 0, &b1, &l1, NULL, NULL, &err)) return 1;
            } else if (wk_sem_encode_batch(&p, &t, sent, 64, 1, &b1, &l1, NULL, NULL, &err))
                return 1;
            uint8_t *all = malloc(4 + l0 + l1);
            all[0] = (uint8_t)l0, all[1] = (uint8_t)(l0 >> 8), all[2] = (uint8_t)(l0 >> 16), all[3] = 0;
            memcpy(all + 4, b0, l0);
            memcpy(all + 4 + l0, b1, l1);
            char name[32];
            snprintf(name, sizeof name, "pair%d", v);
            put(dir, name, all, 4 + l0 + l1, NULL, 0);
            free(all);
            free(b0);
            free(b1);
        }
    }
    wk_kv_tensor_free(&t);
    return 0;
}
