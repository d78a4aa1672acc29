/* Codec byte sizes for the simulator, measured with the real encoders on a sample (see codec_size.h). */
#include "kv/codec_size.h"

#include <stdlib.h>
#include <string.h>

#include "kv/kivi.h"

wk_codec_size_params wk_codec_size_defaults(int layers, int kv_heads, int head_dim) {
    return (wk_codec_size_params){layers, kv_heads, head_dim, 256, 4096, 1, NULL};
}

const char *wk_codec_name(wk_codec codec) {
    switch (codec) {
    case WK_CODEC_FP16: return "fp16";
    case WK_CODEC_KIVI2: return "kivi2";
    case WK_CODEC_KIVI4: return "kivi4";
    case WK_CODEC_CACHEGEN: return "cachegen";
    case WK_CODEC_WIKV: return "wikv";
    }
    return "?";
}

/* Layers sharing CacheGen bins at every level and for K and V get the same class id (= first layer). */
static int same_cg_class(int a, int b, int layers) {
    for (int lv = 0; lv < WK_CG_LEVELS; lv++)
        for (int kv = 0; kv < 2; kv++)
            if (wk_cg_bins(lv, a, layers, kv) != wk_cg_bins(lv, b, layers, kv)) return 0;
    return 1;
}

static int wikv_group(const wk_sem_params *sp, int layer) {
    int g = layer / sp->group_layers;
    return g < sp->nbins ? g : sp->nbins - 1;
}

/* rep[l] = representative (middle) layer of l's class; classes are contiguous runs of layers. */
static void representatives(int layers, const wk_sem_params *sp, int *cg_rep, int *wk_rep) {
    for (int l = 0; l < layers;) {
        int e = l;
        while (e + 1 < layers && same_cg_class(l, e + 1, layers)) e++;
        for (int i = l; i <= e; i++) cg_rep[i] = (l + e) / 2;
        l = e + 1;
    }
    /* a WiKV group reuses a CacheGen representative inside it when there is one (closest to its middle), so the
     * sample needs fewer layers */
    for (int l = 0; l < layers;) {
        int e = l;
        while (e + 1 < layers && wikv_group(sp, e + 1) == wikv_group(sp, l)) e++;
        int mid = (l + e) / 2, rep = -1;
        for (int i = l; i <= e; i++)
            if (cg_rep[i] == i && (rep < 0 || abs(i - mid) < abs(rep - mid))) rep = i;
        if (rep < 0) rep = mid;
        for (int i = l; i <= e; i++) wk_rep[i] = rep;
        l = e + 1;
    }
}

static int fill_sample(const wk_codec_size_params *p, wk_kv_tensor *t, const int *reps, int nreps, wk_err *err) {
    if (!p->sample) {
        wk_kv_synth_params sp = wk_kv_synth_defaults(p->seed);
        return wk_kv_tensor_synth_layers(t, &sp, reps, nreps, err);
    }
    const wk_kv_tensor *s = p->sample;
    for (int i = 0; i < nreps; i++) {
        int from = (int)((int64_t)reps[i] * s->layers / p->layers);
        for (int h = 0; h < t->kv_heads; h++) {
            size_t n = (size_t)t->tokens * t->head_dim;
            memcpy(t->k + wk_kv_row(t, reps[i], h, 0), s->k + wk_kv_row(s, from, h, 0), 2 * n);
            memcpy(t->v + wk_kv_row(t, reps[i], h, 0), s->v + wk_kv_row(s, from, h, 0), 2 * n);
        }
    }
    return 0;
}

static int measure_cachegen(const wk_kv_tensor *t, const int *reps, int nreps,
                            double per_layer[WK_CG_LEVELS][WK_CS_MAX_LAYERS][2], wk_err *err) {
    for (int lv = 0; lv < WK_CG_LEVELS; lv++)
        for (int i = 0; i < nreps; i++) {
            int same = lv > 0 && wk_cg_bins(lv, reps[i], t->layers, 0) == wk_cg_bins(lv - 1, reps[i], t->layers, 0) &&
                       wk_cg_bins(lv, reps[i], t->layers, 1) == wk_cg_bins(lv - 1, reps[i], t->layers, 1);
            if (same) { /* identical bins give identical bytes */
                per_layer[lv][reps[i]][0] = per_layer[lv - 1][reps[i]][0];
                per_layer[lv][reps[i]][1] = per_layer[lv - 1][reps[i]][1];
                continue;
            }
            wk_cg_params cp = wk_cg_defaults();
            cp.level = lv;
            uint8_t *buf;
            size_t len;
            wk_cg_stats st;
            int rc = wk_cg_encode(&cp, t, reps[i], 1, 0, t->tokens, &buf, &len, &st, err);
            if (rc) return rc;
            free(buf);
            per_layer[lv][reps[i]][0] = (double)(st.scales + st.payload) / t->tokens;
            per_layer[lv][reps[i]][1] = (double)(st.tables + st.lengths);
        }
    return 0;
}

static int measure_wikv(const wk_kv_tensor *t, const wk_sem_params *sp, const int *reps, int nreps, int batch,
                        double per_layer[WK_SEM_MAX_LEVELS][WK_CS_MAX_LAYERS], double fixed[WK_SEM_MAX_LEVELS],
                        uint64_t seed, wk_err *err) {
    const int H = t->kv_heads, T = t->tokens, n = H * T;
    float *imp = malloc(sizeof(float) * (size_t)t->layers * n);
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)t->layers * n), *ids = malloc(sizeof(uint32_t) * (size_t)n);
    uint32_t *sent = malloc(sizeof(uint32_t) * (size_t)n);
    int rc = 0, nb[WK_SEM_MAX_LEVELS] = {0};
    if (!imp || !order || !ids || !sent) rc = wk_err_set(err, WK_ENOMEM, "codec sizes: out of memory");
    if (!rc) {
        rc = wk_sem_synth_importance(seed, t->layers, H, T, imp, err);
        wk_sem_suffix_sum(imp, t->layers, H, T);
        if (!rc) rc = wk_sem_order(imp, t->layers, H, T, order, err);
    }
    memset(fixed, 0, sizeof(double) * WK_SEM_MAX_LEVELS);
    for (int i = 0; i < nreps && !rc; i++) {
        int m = 0; /* this layer's units, in the global semantic order */
        for (size_t j = 0; j < (size_t)t->layers * n; j++)
            if (order[j] / (uint32_t)n == (uint32_t)reps[i]) ids[m++] = order[j];
        for (int lv = 0; lv < WK_SEM_MAX_LEVELS && !rc; lv++) {
            /* refinements cost the same per unit wherever the unit is: code a quarter of them (at least 256)
             * and scale, which keeps the whole measurement fast */
            int mm = lv == 0 || m <= 256 ? m : m / 4 > 256 ? m / 4 : 256;
            double var = 0;
            for (int at = 0; at < mm && !rc; at += batch) {
                int k = mm - at < batch ? mm - at : batch;
                uint8_t *buf;
                size_t len;
                wk_sem_stats st;
                rc = wk_sem_encode_batch(sp, t, lv ? sent + at : ids + at, k, lv, &buf, &len, lv ? NULL : sent + at,
                                         &st, err);
                if (rc) break;
                free(buf);
                var += (double)(st.ids + st.scales + st.payload);
                fixed[lv] += (double)(st.header + st.tables);
                nb[lv]++;
            }
            per_layer[lv][reps[i]] = var * m / mm / T;
        }
    }
    for (int lv = 0; lv < WK_SEM_MAX_LEVELS; lv++)
        if (nb[lv]) fixed[lv] /= nb[lv];
    free(imp);
    free(order);
    free(ids);
    free(sent);
    return rc;
}

int wk_codec_sizes_measure(const wk_codec_size_params *p, wk_codec_sizes *out, wk_err *err) {
    if (p->layers < 1 || p->layers > WK_CS_MAX_LAYERS || p->kv_heads < 1 || p->kv_heads > WK_KV_MAX_HEADS ||
        p->head_dim < 1 || p->head_dim > WK_KV_MAX_HEAD_DIM || p->sample_tokens < 16 || p->wikv_batch_units < 1)
        return wk_err_set(err, WK_EINVAL, "codec sizes: shape %dx%dx%d, sample %d tokens out of range", p->layers,
                          p->kv_heads, p->head_dim, p->sample_tokens);
    int tokens = p->sample_tokens;
    if (p->sample) {
        if (p->sample->kv_heads != p->kv_heads || p->sample->head_dim != p->head_dim)
            return wk_err_set(err, WK_EINVAL, "codec sizes: sample has %d kv heads x %d dims, model %d x %d",
                              p->sample->kv_heads, p->sample->head_dim, p->kv_heads, p->head_dim);
        if (p->sample->tokens < tokens) tokens = p->sample->tokens;
    }
    memset(out, 0, sizeof *out);
    out->layers = p->layers;
    out->kv_heads = p->kv_heads;
    out->head_dim = p->head_dim;
    out->sample_tokens = tokens;
    out->wikv_batch_units = p->wikv_batch_units;
    out->fp16_bpt = 4.0 * p->kv_heads * p->head_dim;
    wk_sem_params sp = wk_sem_defaults(p->layers);
    int cg_rep[WK_CS_MAX_LAYERS], wk_rep[WK_CS_MAX_LAYERS], reps[2 * WK_CS_MAX_LAYERS], nreps = 0;
    representatives(p->layers, &sp, cg_rep, wk_rep);
    int cg_list[WK_CS_MAX_LAYERS], ncg = 0, wk_list[WK_CS_MAX_LAYERS], nwk = 0;
    for (int l = 0; l < p->layers; l++) {
        if (cg_rep[l] == l) cg_list[ncg++] = l;
        if (wk_rep[l] == l) wk_list[nwk++] = l;
        if (cg_rep[l] == l || wk_rep[l] == l) reps[nreps++] = l;
    }
    /* the full-depth tensor is calloc'd: only the representative layers' pages are ever touched */
    wk_kv_tensor t;
    int rc = wk_kv_tensor_alloc(&t, p->layers, p->kv_heads, tokens, p->head_dim, err);
    if (rc) return rc;
    double(*cg)[WK_CS_MAX_LAYERS][2] = calloc(WK_CG_LEVELS, sizeof *cg);
    double(*wk)[WK_CS_MAX_LAYERS] = calloc(WK_SEM_MAX_LEVELS, sizeof *wk);
    if (!cg || !wk) rc = wk_err_set(err, WK_ENOMEM, "codec sizes: out of memory");
    if (!rc) rc = fill_sample(p, &t, reps, nreps, err);
    if (!rc) rc = measure_cachegen(&t, cg_list, ncg, cg, err);
    if (!rc)
        rc = measure_wikv(&t, &sp, wk_list, nwk, p->wikv_batch_units, wk, out->wikv_batch_bytes, p->seed, err);
    for (int l = 0; !rc && l < p->layers; l++) {
        for (int lv = 0; lv < WK_CG_LEVELS; lv++) {
            out->cg_bpt[lv][l] = cg[lv][cg_rep[l]][0];
            out->cg_chunk_layer_bytes[lv][l] = cg[lv][cg_rep[l]][1];
        }
        for (int lv = 0; lv < WK_SEM_MAX_LEVELS; lv++) out->wikv_bpt[lv][l] = wk[lv][wk_rep[l]];
    }
    free(cg);
    free(wk);
    wk_kv_tensor_free(&t);
    return rc;
}

double wk_codec_bpt(const wk_codec_sizes *s, wk_codec codec, int level, int layer) {
    if (layer < 0 || layer >= s->layers) return 0;
    switch (codec) {
    case WK_CODEC_FP16: return s->fp16_bpt;
    case WK_CODEC_KIVI2:
    case WK_CODEC_KIVI4: {
        int bits = codec == WK_CODEC_KIVI2 ? 2 : 4, D = s->head_dim, G = 32;
        return s->kv_heads * 2.0 * (D * bits / 8.0 + 4.0 * D / G); /* KV-ALGORITHMS.md 1: K and V alike */
    }
    case WK_CODEC_CACHEGEN: return level >= 0 && level < WK_CG_LEVELS ? s->cg_bpt[level][layer] : 0;
    case WK_CODEC_WIKV: return level >= 0 && level < WK_SEM_MAX_LEVELS ? s->wikv_bpt[level][layer] : 0;
    }
    return 0;
}

double wk_codec_unit_bytes(const wk_codec_sizes *s, wk_codec codec, int level, int layer0, int nlayers, int tokens) {
    if (layer0 < 0 || nlayers < 1 || layer0 + nlayers > s->layers || tokens < 1) return 0;
    double bytes = 0;
    if (codec == WK_CODEC_KIVI2 || codec == WK_CODEC_KIVI4) {
        wk_kivi_params kp = wk_kivi_defaults(codec == WK_CODEC_KIVI2 ? 2 : 4);
        return (double)wk_kivi_bytes(&kp, tokens, s->head_dim) * s->kv_heads * nlayers;
    }
    for (int l = layer0; l < layer0 + nlayers; l++) {
        bytes += wk_codec_bpt(s, codec, level, l) * tokens;
        if (codec == WK_CODEC_CACHEGEN && level >= 0 && level < WK_CG_LEVELS)
            bytes += s->cg_chunk_layer_bytes[level][l];
    }
    if (codec == WK_CODEC_CACHEGEN) bytes += WK_CG_HEADER_BYTES;
    if (codec == WK_CODEC_WIKV && level >= 0 && level < WK_SEM_MAX_LEVELS) {
        double units = (double)nlayers * s->kv_heads * tokens;
        int64_t batches = (int64_t)((units + s->wikv_batch_units - 1) / s->wikv_batch_units);
        bytes += (double)batches * s->wikv_batch_bytes[level];
    }
    return bytes;
}
