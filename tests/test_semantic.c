/* WiKV semantic coding: importance and order on hand-made attention, batch round trips at every level with
 * their error bounds, reorder limits, delta on/off, and refusal of out-of-order or damaged batches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kv/semantic.h"
#include "tests/check_util.h"

START_TEST(importance_suffix_sum_and_order) {
    /* L=2, H=1, Q=2, T=3 */
    float attn[2 * 2 * 3] = {0.5f, 0.25f, 0.25f, 0.7f, 0.2f, 0.1f, /* layer 0: mean 0.6 0.225 0.175 */
                             0.1f, 0.1f, 0.8f, 0.1f, 0.3f, 0.6f};  /* layer 1: mean 0.1 0.2 0.7 */
    float imp[6];
    wk_err err;
    ck_assert_int_eq(wk_sem_importance_from_attention(attn, 2, 1, 2, 3, imp, &err), 0);
    ck_assert_float_eq_tol(imp[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(imp[5], 0.7f, 1e-6f);
    wk_sem_suffix_sum(imp, 2, 1, 3);
    ck_assert_float_eq_tol(imp[0], 0.7f, 1e-6f);   /* 0.6 + 0.1 */
    ck_assert_float_eq_tol(imp[2], 0.875f, 1e-6f); /* 0.175 + 0.7 */
    ck_assert_float_eq_tol(imp[5], 0.7f, 1e-6f);
    uint32_t order[6];
    ck_assert_int_eq(wk_sem_order(imp, 2, 1, 3, order, &err), 0);
    /* keys: id0 .7, id1 .425, id2 .875, id3 .1, id4 .2, id5 .7 -> 2, 0, 5 (tie .7: smaller id first), 1, 4, 3 */
    uint32_t want[6] = {2, 0, 5, 1, 4, 3};
    ck_assert_int_eq(memcmp(order, want, sizeof want), 0);
}
END_TEST

/* GQA: 4 query heads over 2 KV heads; query heads 0,1 -> KV head 0 and 2,3 -> KV head 1 (kv-head-major). */
START_TEST(importance_gqa_grouping) {
    float attn[1 * 4 * 2 * 2]; /* [L=1][Hq=4][Q=2][T=2] */
    for (int qh = 0; qh < 4; qh++)
        for (int q = 0; q < 2; q++) {
            attn[(qh * 2 + q) * 2 + 0] = (float)qh * 0.1f;
            attn[(qh * 2 + q) * 2 + 1] = 1.0f - (float)qh * 0.1f;
        }
    float imp[4];
    wk_err err;
    ck_assert_int_eq(wk_sem_importance_gqa(attn, 1, 4, 2, 2, 2, imp, &err), 0);
    ck_assert_float_eq_tol(imp[0], 0.1f, 1e-6f);  /* heads 0 + 1: 0.0 + 0.1 */
    ck_assert_float_eq_tol(imp[1], 1.9f, 1e-6f);
    ck_assert_float_eq_tol(imp[2], 0.5f, 1e-6f);  /* heads 2 + 3: 0.2 + 0.3 */
    ck_assert_float_eq_tol(imp[3], 1.5f, 1e-6f);
    ck_assert_int_eq(wk_sem_importance_gqa(attn, 1, 3, 2, 2, 2, imp, &err), WK_EINVAL);
}
END_TEST

/* With positive attention, each (head, token) arrives layer by layer in depth order. */
START_TEST(order_is_depth_prefix) {
    const int L = 6, H = 2, T = 50;
    float *imp = malloc(sizeof(float) * L * H * T);
    uint32_t *order = malloc(sizeof(uint32_t) * L * H * T), *pos = malloc(sizeof(uint32_t) * L * H * T);
    wk_err err;
    ck_assert_int_eq(wk_sem_synth_importance(3, L, H, T, imp, &err), 0);
    double row = 0;
    for (int t = 0; t < T; t++) row += imp[t];
    ck_assert_double_eq_tol(row, 1.0, 1e-4);
    wk_sem_suffix_sum(imp, L, H, T);
    ck_assert_int_eq(wk_sem_order(imp, L, H, T, order, &err), 0);
    for (int i = 0; i < L * H * T; i++) pos[order[i]] = (uint32_t)i;
    for (int l = 0; l + 1 < L; l++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                ck_assert_uint_lt(pos[(l * H + h) * T + t], pos[((l + 1) * H + h) * T + t]);
    /* the sink token of layer 0 is among the first units */
    ck_assert_uint_lt(pos[0], 2);
    free(imp);
    free(order);
    free(pos);
}
END_TEST

typedef struct {
    wk_kv_tensor t, u;
    wk_sem_map m;
    uint32_t *order;
    int L, H, T, D, N;
} fixture;

static void setup(fixture *f, int L, int H, int T, int D) {
    wk_err err;
    f->L = L, f->H = H, f->T = T, f->D = D, f->N = L * H * T;
    ck_assert_int_eq(wk_kv_tensor_alloc(&f->t, L, H, T, D, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&f->u, L, H, T, D, &err), 0);
    wk_kv_synth_params sp = wk_kv_synth_defaults(77);
    ck_assert_int_eq(wk_kv_tensor_synth(&f->t, &sp, &err), 0);
    ck_assert_int_eq(wk_sem_map_alloc(&f->m, L, H, T, &err), 0);
    float *imp = malloc(sizeof(float) * f->N);
    f->order = malloc(sizeof(uint32_t) * f->N);
    ck_assert_int_eq(wk_sem_synth_importance(5, L, H, T, imp, &err), 0);
    wk_sem_suffix_sum(imp, L, H, T);
    ck_assert_int_eq(wk_sem_order(imp, L, H, T, f->order, &err), 0);
    free(imp);
}

static void teardown(fixture *f) {
    wk_kv_tensor_free(&f->t);
    wk_kv_tensor_free(&f->u);
    wk_sem_map_free(&f->m);
    free(f->order);
}

/* Largest error over present units divided by the level's half step (1.0 means exactly at the bound). */
static double worst_ratio(const fixture *f, const wk_sem_params *p, int level) {
    double worst = 0;
    for (int id = 0; id < f->N; id++) {
        if (f->m.level[id] != level + 1) continue;
        int layer = id / (f->H * f->T), g = layer / p->group_layers;
        int M = p->bins[g < p->nbins ? g : p->nbins - 1] / 2 - 1;
        for (int kv = 0; kv < 2; kv++) {
            const uint16_t *x = (kv ? f->t.v : f->t.k) + (size_t)id * f->D, *y = (kv ? f->u.v : f->u.k) + (size_t)id * f->D;
            float a = 0;
            for (int d = 0; d < f->D; d++) a = fmaxf(a, fabsf(wk_half_to_float(x[d])));
            double half = a / M / 2 / pow(4, level);
            for (int d = 0; d < f->D; d++) {
                double e = fabs(wk_half_to_float(x[d]) - wk_half_to_float(y[d]));
                double slack = fabs(wk_half_to_float(x[d])) * 1e-3 * (level + 1); /* fp16 rounding per stage */
                double r = (e - slack) / half;
                if (r > worst) worst = r;
            }
        }
    }
    return worst;
}

static void run_levels(int delta, int reorder) {
    fixture f;
    setup(&f, 4, 2, 80, 32);
    wk_sem_params p = wk_sem_defaults(4);
    p.delta = delta;
    p.reorder = reorder;
    wk_err err;
    const int B = 200;
    uint32_t *sent = malloc(sizeof(uint32_t) * f.N);
    size_t bytes[WK_SEM_MAX_LEVELS] = {0}, payload[WK_SEM_MAX_LEVELS] = {0};
    for (int level = 0; level < WK_SEM_MAX_LEVELS; level++) {
        for (int at = 0; at < f.N; at += B) {
            int n = f.N - at < B ? f.N - at : B;
            uint8_t *buf;
            size_t len;
            wk_sem_stats st;
            ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, level ? sent + at : f.order + at, n, level, &buf, &len,
                                                 level ? NULL : sent + at, &st, &err),
                             0);
            ck_assert_uint_eq(st.header + st.ids + st.scales + st.tables + st.payload, len);
            if (level == 0 && reorder)
                for (int i = 0; i < n; i++) { /* every unit within 20 places of its semantic position */
                    int found = -1;
                    for (int j = 0; j < n; j++)
                        if (sent[at + j] == f.order[at + i]) found = j;
                    ck_assert_int_ge(found, 0);
                    ck_assert_int_le(abs(found - i), 20);
                }
            ck_assert_int_eq(wk_sem_decode_batch(buf, len, &f.u, &f.m, &err), 0);
            bytes[level] += len;
            payload[level] += st.payload;
            free(buf);
        }
        for (int id = 0; id < f.N; id++) ck_assert_uint_eq(f.m.level[id], level + 1);
        double r = worst_ratio(&f, &p, level);
        ck_assert_msg(r <= 1.001, "level %d worst error %.3f of the half step", level, r);
    }
    /* level 0 is coarse (at most log2(17) = 4.1 bits/value before entropy coding, plus deltas' spread); a
     * refinement symbol has entropy 2.25 bits for a uniform residual (q = +-2 at 1/8 each, 0, +-1 at 1/4) */
    double values = 2.0 * f.N * f.D;
    ck_assert_double_lt(bytes[0] * 8.0 / values, delta ? 6.0 : 4.5);
    for (int level = 1; level < WK_SEM_MAX_LEVELS; level++) {
        ck_assert_double_lt(payload[level] * 8.0 / values, 2.35);
        ck_assert_double_gt(payload[level] * 8.0 / values, 1.5);
    }
    free(sent);
    teardown(&f);
}

START_TEST(levels_plain) { run_levels(0, 0); }
END_TEST
START_TEST(levels_delta) { run_levels(1, 0); }
END_TEST
START_TEST(levels_delta_reordered) { run_levels(1, 1); }
END_TEST

/* Sum over neighbours of the cosine distance of the units' concatenated K|V vectors. */
static double path_cost(const wk_kv_tensor *t, const uint32_t *ids, int n) {
    double cost = 0;
    int D = t->head_dim;
    for (int i = 0; i + 1 < n; i++) {
        double dot = 0, na = 0, nb = 0;
        for (int kv = 0; kv < 2; kv++)
            for (int d = 0; d < D; d++) {
                const uint16_t *x = kv ? t->v : t->k;
                double a = wk_half_to_float(x[(size_t)ids[i] * D + d]), b = wk_half_to_float(x[(size_t)ids[i + 1] * D + d]);
                dot += a * b, na += a * a, nb += b * b;
            }
        cost += 1 - dot / sqrt(na * nb);
    }
    return cost;
}

/* The 2-opt reorder puts similar units next to each other: the neighbour distance drops clearly. */
START_TEST(reorder_shortens_path) {
    fixture f;
    setup(&f, 4, 2, 80, 32);
    wk_sem_params p = wk_sem_defaults(4);
    p.reorder = 1;
    wk_err err;
    uint32_t *sent = malloc(sizeof(uint32_t) * f.N);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, f.order, f.N, 0, &buf, &len, sent, NULL, &err), 0);
    double before = path_cost(&f.t, f.order, f.N), after = path_cost(&f.t, sent, f.N);
    ck_assert_msg(after < 0.6 * before, "path %.1f -> %.1f", before, after);
    free(buf);
    free(sent);
    teardown(&f);
}
END_TEST

/* Delta and reorder change only the bytes, never the decoded values. */
START_TEST(options_decode_to_same_values) {
    fixture f;
    setup(&f, 3, 2, 40, 16);
    wk_err err;
    wk_kv_tensor outs[3];
    for (int v = 0; v < 3; v++) {
        wk_sem_params p = wk_sem_defaults(3);
        p.delta = v > 0;
        p.reorder = v == 2;
        wk_sem_map m;
        ck_assert_int_eq(wk_kv_tensor_alloc(&outs[v], 3, 2, 40, 16, &err), 0);
        ck_assert_int_eq(wk_sem_map_alloc(&m, 3, 2, 40, &err), 0);
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, f.order, f.N, 0, &buf, &len, NULL, NULL, &err), 0);
        ck_assert_int_eq(wk_sem_decode_batch(buf, len, &outs[v], &m, &err), 0);
        free(buf);
        wk_sem_map_free(&m);
    }
    size_t n = wk_kv_tensor_elems(&f.t);
    ck_assert_int_eq(memcmp(outs[0].k, outs[1].k, 2 * n), 0);
    ck_assert_int_eq(memcmp(outs[0].v, outs[2].v, 2 * n), 0);
    for (int v = 0; v < 3; v++) wk_kv_tensor_free(&outs[v]);
    teardown(&f);
}
END_TEST

/* Substreams: any split (one unit each, a partial last one, one for the batch) decodes to the same values, with
 * and without delta (which restarts per substream); more substreams cost more bytes (plain); a units-per-stream count
 * of 0, past n, or that does not match the stored lengths is refused. */
START_TEST(substreams_decode_to_same_values) {
    fixture f;
    setup(&f, 3, 2, 40, 16);
    wk_err err;
    const int splits[] = {1, 7, 16, 240}, n = 100;
    wk_kv_tensor ref, out;
    ck_assert_int_eq(wk_kv_tensor_alloc(&ref, 3, 2, 40, 16, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&out, 3, 2, 40, 16, &err), 0);
    for (int delta = 0; delta < 2; delta++) {
        size_t prev_len = SIZE_MAX;
        for (int i = 0; i < 4; i++) {
            wk_sem_params p = wk_sem_defaults(3);
            p.delta = delta;
            p.stream_units = splits[i];
            wk_sem_map m;
            ck_assert_int_eq(wk_sem_map_alloc(&m, 3, 2, 40, &err), 0);
            uint8_t *buf;
            size_t len;
            wk_sem_stats st;
            ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, f.order, n, 0, &buf, &len, NULL, &st, &err), 0);
            if (!delta) /* with delta the tables change with the split too */
                ck_assert_msg(len < prev_len, "split %d: %zu bytes, finer split had %zu", splits[i], len, prev_len);
            prev_len = len;
            ck_assert_int_eq(wk_sem_decode_batch(buf, len, i ? &out : &ref, &m, &err), 0);
            if (i) ck_assert_int_eq(memcmp(ref.k, out.k, 2 * wk_kv_tensor_elems(&ref)), 0);
            /* the payload starts with the varint units-per-stream (< 128 here) */
            size_t at = st.header + st.ids + st.scales + st.tables;
            int stored = splits[i] < n ? splits[i] : n;
            ck_assert_int_eq(buf[at], stored);
            const uint8_t bad[] = {0, (uint8_t)(n + 1), (uint8_t)(stored == 7 ? 8 : 7)};
            for (int b = 0; b < 3; b++) {
                wk_sem_map m2;
                ck_assert_int_eq(wk_sem_map_alloc(&m2, 3, 2, 40, &err), 0);
                buf[at] = bad[b];
                ck_assert_int_eq(wk_sem_decode_batch(buf, len, &out, &m2, &err), WK_EFORMAT);
                wk_sem_map_free(&m2);
            }
            free(buf);
            wk_sem_map_free(&m);
        }
    }
    wk_kv_tensor_free(&ref);
    wk_kv_tensor_free(&out);
    teardown(&f);
}
END_TEST

/* The ids a batch names are the units the decoder raises, in stream order; a wrong shape or a cut id list is
 * refused naming the field. */
START_TEST(batch_ids_are_the_units_it_raises) {
    fixture f;
    setup(&f, 3, 2, 40, 16);
    wk_err err;
    wk_sem_params p = wk_sem_defaults(3);
    p.reorder = 1; /* the sent order then differs from f.order */
    uint32_t sent[90], *ids;
    uint32_t n;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, f.order + 5, 90, 0, &buf, &len, sent, NULL, &err), 0);
    ck_assert_int_eq(wk_sem_batch_ids(buf, len, 3, 2, 40, 16, &ids, &n, &err), 0);
    ck_assert_uint_eq(n, 90);
    ck_assert_int_eq(memcmp(ids, sent, sizeof sent), 0);
    wk_sem_map m;
    wk_kv_tensor out;
    ck_assert_int_eq(wk_sem_map_alloc(&m, 3, 2, 40, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&out, 3, 2, 40, 16, &err), 0);
    ck_assert_int_eq(wk_sem_decode_batch(buf, len, &out, &m, &err), 0);
    size_t raised = 0;
    for (size_t u = 0; u < 3 * 2 * 40; u++) raised += m.level[u] == 1;
    ck_assert_uint_eq(raised, 90);
    for (uint32_t i = 0; i < n; i++) ck_assert_int_eq(m.level[ids[i]], 1);
    free(ids);
    ck_assert_int_eq(wk_sem_batch_ids(buf, len, 3, 2, 41, 16, &ids, &n, &err), WK_EFORMAT);
    ck_assert_ptr_null(ids);
    ck_assert_msg(strstr(err.msg, "shape") != NULL, "%s", err.msg);
    ck_assert_int_eq(wk_sem_batch_ids(buf, 30, 3, 2, 40, 16, &ids, &n, &err), WK_EFORMAT);
    ck_assert_ptr_null(ids);
    free(buf);
    wk_sem_map_free(&m);
    wk_kv_tensor_free(&out);
    teardown(&f);
}
END_TEST

START_TEST(refusals) {
    fixture f;
    setup(&f, 2, 2, 30, 16);
    wk_sem_params p = wk_sem_defaults(2);
    wk_err err;
    uint8_t *b0, *b1;
    size_t l0, l1;
    ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, f.order, 50, 0, &b0, &l0, NULL, NULL, &err), 0);
    ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, f.order, 50, 1, &b1, &l1, NULL, NULL, &err), 0);
    /* refinement before its base */
    ck_assert_int_eq(wk_sem_decode_batch(b1, l1, &f.u, &f.m, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "level"));
    /* truncated base: error, map untouched */
    for (size_t cut = 0; cut < l0; cut += 13) ck_assert_int_eq(wk_sem_decode_batch(b0, cut, &f.u, &f.m, &err), WK_EFORMAT);
    for (int id = 0; id < f.N; id++) ck_assert_uint_eq(f.m.level[id], 0);
    ck_assert_int_eq(wk_sem_decode_batch(b0, l0, &f.u, &f.m, &err), 0);
    /* the same base twice is refused */
    ck_assert_int_eq(wk_sem_decode_batch(b0, l0, &f.u, &f.m, &err), WK_EFORMAT);
    ck_assert_int_eq(wk_sem_decode_batch(b1, l1, &f.u, &f.m, &err), 0);
    /* a duplicated unit inside one batch */
    uint32_t dup[3] = {f.order[60], f.order[61], f.order[60]};
    uint8_t *bd;
    size_t ld;
    ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, dup, 3, 0, &bd, &ld, NULL, NULL, &err), 0);
    ck_assert_int_eq(wk_sem_decode_batch(bd, ld, &f.u, &f.m, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate"));
    ck_assert_uint_eq(f.m.level[f.order[60]], 0);
    /* shape mismatch */
    wk_kv_tensor other;
    ck_assert_int_eq(wk_kv_tensor_alloc(&other, 2, 2, 31, 16, &err), 0);
    ck_assert_int_eq(wk_sem_decode_batch(b0, l0, &other, &f.m, &err), WK_EFORMAT);
    wk_kv_tensor_free(&other);
    /* a 10-byte unit-id varint (found by fuzzing: overflowed the zigzag decode) */
    size_t hdr = 25 + (size_t)p.nbins;
    uint8_t huge[64];
    memcpy(huge, b0, hdr);
    memset(huge + hdr, 0xFF, 9);
    huge[hdr + 9] = 0x01;
    memset(huge + hdr + 10, 0, sizeof huge - hdr - 10);
    huge[20] = 1, huge[21] = huge[22] = huge[23] = 0; /* n_units = 1 */
    ck_assert_int_eq(wk_sem_decode_batch(huge, sizeof huge, &f.u, &f.m, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "out of range"));
    /* bad ids on the encoder side */
    uint32_t bad = (uint32_t)f.N;
    ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, &bad, 1, 0, &bd, &ld, NULL, NULL, &err), WK_EINVAL);
    free(b0);
    free(b1);
    free(bd);
    teardown(&f);
}
END_TEST

/* A unit with an inf or NaN element decodes to finite values at every level. */
START_TEST(non_finite_input) {
    fixture f;
    setup(&f, 2, 1, 20, 16);
    f.t.k[(size_t)f.order[0] * 16 + 1] = 0x7C00;
    f.t.v[(size_t)f.order[1] * 16 + 2] = 0x7E00;
    wk_sem_params p = wk_sem_defaults(2);
    wk_err err;
    for (int level = 0; level < WK_SEM_MAX_LEVELS; level++) {
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(wk_sem_encode_batch(&p, &f.t, f.order, f.N, level, &buf, &len, NULL, NULL, &err), 0);
        ck_assert_int_eq(wk_sem_decode_batch(buf, len, &f.u, &f.m, &err), 0);
        free(buf);
    }
    for (size_t i = 0; i < wk_kv_tensor_elems(&f.u); i++) {
        ck_assert(isfinite(wk_half_to_float(f.u.k[i])));
        ck_assert(isfinite(wk_half_to_float(f.u.v[i])));
    }
    teardown(&f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("semantic");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, importance_suffix_sum_and_order);
    tcase_add_test(tc, importance_gqa_grouping);
    tcase_add_test(tc, order_is_depth_prefix);
    tcase_add_test(tc, levels_plain);
    tcase_add_test(tc, levels_delta);
    tcase_add_test(tc, levels_delta_reordered);
    tcase_add_test(tc, options_decode_to_same_values);
    tcase_add_test(tc, substreams_decode_to_same_values);
    tcase_add_test(tc, reorder_shortens_path);
    tcase_add_test(tc, batch_ids_are_the_units_it_raises);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, non_finite_input);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
