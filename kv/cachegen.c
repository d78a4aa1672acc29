/* CacheGen-style chunk codec: quantize per token with layer-group bins, optional anchor deltas,
 * range-code per (K|V, layer, channel) tables (format in cachegen.h). */
#include "kv/cachegen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kv/bytebuf.h"
#include "kv/rangecoder.h"

/* [level][K first, K second, K third, V first, V second] */
static const int level_bins[WK_CG_LEVELS][5] = {
    {12, 12, 8, 12, 8}, {16, 16, 12, 16, 12}, {32, 16, 16, 32, 16}, {32, 32, 24, 32, 24}, {32, 32, 32, 32, 32}};

wk_cg_params wk_cg_defaults(void) { return (wk_cg_params){2, 0, 10, 12, 8}; }

int wk_cg_bins(int level, int layer, int layers, int is_value) {
    if (level < 0) level = 0;
    if (level >= WK_CG_LEVELS) level = WK_CG_LEVELS - 1;
    const int *b = level_bins[level];
    if (is_value) {
        int split = (layers * 2 + 16) / 32;
        if (split < 1) split = 1;
        return layer < split ? b[3] : b[4];
    }
    int s1 = (layers * 10 + 16) / 32, s2 = (layers * 20 + 16) / 32;
    return layer < s1 ? b[0] : layer < s2 ? b[1] : b[2];
}

static float h16(float x) { return wk_kv_round_fp16(x); }

/* Per-layer working state: symbols [T][C], scales [T], tables [C] for one of K/V. */
typedef struct {
    int T, C, H, D, M, nsym;
    uint8_t *sym;
    uint16_t *scale;
    wk_rc_table *tab;
} cg_side;

static int side_alloc(cg_side *s, int T, int H, int D, wk_err *err) {
    memset(s, 0, sizeof *s);
    s->T = T;
    s->H = H;
    s->D = D;
    s->C = H * D;
    s->sym = malloc((size_t)T * s->C);
    s->scale = malloc((size_t)T * 2);
    s->tab = malloc(sizeof(wk_rc_table) * (size_t)s->C);
    if (!s->sym || !s->scale || !s->tab) return wk_err_set(err, WK_ENOMEM, "cachegen: out of memory");
    return 0;
}

static void side_free(cg_side *s) {
    free(s->sym);
    free(s->scale);
    free(s->tab);
}

/* factor = M / a16 (0 when a16 is 0 or not finite) */
static int quant_symbol(float x, float factor, int M) {
    if (!(factor > 0) || !isfinite(factor) || !isfinite(x)) return M;
    float q = rintf(x * factor);
    if (q > M) q = (float)M;
    if (q < -M) q = (float)-M;
    return (int)q + M;
}

/* step = a16 / M, computed once per token by encoder and decoder alike */
/* (a zero code stays exactly 0 even when a non-finite scale made step infinite) */
static float dequant_symbol(int s, float step, int M) { return s == M ? 0.0f : (float)(s - M) * step; }

static int is_anchor(const wk_cg_params *p, int t) { return !p->delta || t % p->anchor_group == 0; }

/* Quantizes one layer of K or V (src = t->k or t->v) into s: symbols, scales; rec [T][C] holds the fp16
 * reconstruction (needed for anchors in delta mode). */
static void quantize_layer(const wk_cg_params *p, const wk_kv_tensor *t, const uint16_t *src, int layer,
                           int token0, cg_side *s, float *row, float *rec) {
    for (int tt = 0; tt < s->T; tt++) {
        int anchor_t = tt - (p->delta ? tt % p->anchor_group : 0);
        float amax = 0;
        for (int h = 0; h < s->H; h++) {
            const uint16_t *x = src + wk_kv_row(t, layer, h, token0 + tt);
            for (int d = 0; d < s->D; d++) {
                int c = h * s->D + d;
                float v = wk_half_to_float(x[d]);
                if (!is_anchor(p, tt)) v -= rec[(size_t)anchor_t * s->C + c];
                row[c] = v;
                if (fabsf(v) > amax) amax = fabsf(v);
            }
        }
        uint16_t a_h = wk_float_to_half(amax);
        float a16 = wk_half_to_float(a_h);
        s->scale[tt] = a_h;
        float factor = a16 > 0 ? (float)s->M / a16 : 0.0f, step = a16 / (float)s->M;
        uint8_t *sym = s->sym + (size_t)tt * s->C;
        for (int c = 0; c < s->C; c++) sym[c] = (uint8_t)quant_symbol(row[c], factor, s->M);
        if (!p->delta) continue; /* reconstructions are only needed as anchors */
        for (int c = 0; c < s->C; c++) {
            float base = is_anchor(p, tt) ? 0.0f : rec[(size_t)anchor_t * s->C + c];
            rec[(size_t)tt * s->C + c] = h16(base + dequant_symbol(sym[c], step, s->M));
        }
    }
}

static int build_tables(const wk_cg_params *p, cg_side *s, wk_err *err) {
    uint64_t counts[WK_RC_MAX_SYMBOLS];
    for (int c = 0; c < s->C; c++) {
        memset(counts, 0, sizeof counts);
        for (int tt = 0; tt < s->T; tt++) counts[s->sym[(size_t)tt * s->C + c]]++;
        int rc = wk_rc_table_from_counts(&s->tab[c], counts, s->nsym, p->table_bits, err);
        if (rc) return rc;
    }
    return 0;
}

/* Channels [d0, d1) of head h, token-major. */
static void encode_group(const cg_side *s, int h, int d0, int d1, wk_wbuf *w) {
    wk_rc_enc e;
    wk_rc_enc_init(&e, w);
    for (int tt = 0; tt < s->T; tt++)
        for (int d = d0; d < d1; d++) {
            int c = h * s->D + d;
            wk_rc_enc_put(&e, &s->tab[c], s->sym[(size_t)tt * s->C + c]);
        }
    wk_rc_enc_finish(&e);
}

static int check_params(const wk_cg_params *p, wk_err *err) {
    if (p->level < 0 || p->level >= WK_CG_LEVELS || p->anchor_group < 1 || p->anchor_group > 255 ||
        p->table_bits < 6 || p->table_bits > WK_RC_MAX_TOTAL_BITS || p->stream_channels < 1 ||
        p->stream_channels > 255)
        return wk_err_set(err, WK_EINVAL,
                          "cachegen: level %d, anchor_group %d, table_bits %d, stream_channels %d out of range",
                          p->level, p->anchor_group, p->table_bits, p->stream_channels);
    return 0;
}

static int encode_layer(const wk_cg_params *p, const wk_kv_tensor *t, int layer, int token0, cg_side sides[2],
                        float *row, float *rec, wk_wbuf *out, wk_cg_stats *st, wk_err *err) {
    size_t size_at = out->len;
    wk_wbuf_u32(out, 0); /* layer_bytes, filled in below */
    st->lengths += 4;
    for (int kv = 0; kv < 2; kv++) {
        cg_side *s = &sides[kv];
        s->M = wk_cg_bins(p->level, layer, t->layers, kv) / 2 - 1;
        s->nsym = 2 * s->M + 1;
        quantize_layer(p, t, kv ? t->v : t->k, layer, token0, s, row, rec);
        int rc = build_tables(p, s, err);
        if (rc) return rc;
    }
    size_t at = out->len;
    for (int kv = 0; kv < 2; kv++)
        for (int tt = 0; tt < sides[kv].T; tt++) wk_wbuf_u16(out, sides[kv].scale[tt]);
    st->scales += out->len - at;
    at = out->len;
    for (int kv = 0; kv < 2; kv++)
        for (int c = 0; c < sides[kv].C; c++) wk_rc_table_write(&sides[kv].tab[c], out);
    st->tables += out->len - at;
    const int G = p->stream_channels, ng = (t->head_dim + G - 1) / G, ns = 2 * t->kv_heads * ng;
    size_t *lens = malloc(sizeof(size_t) * (size_t)ns);
    if (!lens) return wk_err_set(err, WK_ENOMEM, "cachegen: out of memory");
    wk_wbuf streams;
    wk_wbuf_init(&streams);
    for (int i = 0; i < ns; i++) { /* i = (kv * heads + h) * ng + g */
        int kv = i / (t->kv_heads * ng), h = i / ng % t->kv_heads, g = i % ng;
        size_t before = streams.len;
        encode_group(&sides[kv], h, g * G, g * G + G < t->head_dim ? g * G + G : t->head_dim, &streams);
        lens[i] = streams.len - before;
    }
    at = out->len;
    for (int i = 0; i < ns; i++) wk_wbuf_varint(out, lens[i]);
    free(lens);
    st->lengths += out->len - at;
    wk_wbuf_bytes(out, streams.data, streams.len);
    st->payload += streams.len;
    int rc = wk_wbuf_check(&streams, err);
    if (!rc) rc = wk_wbuf_check(out, err);
    if (!rc && out->len - size_at - 4 > UINT32_MAX)
        rc = wk_err_set(err, WK_EINVAL, "cachegen: layer %d needs %zu bytes (u32 limit)", layer, out->len - size_at);
    if (!rc) {
        uint32_t n = (uint32_t)(out->len - size_at - 4);
        for (int i = 0; i < 4; i++) out->data[size_at + i] = (uint8_t)(n >> (8 * i));
    }
    wk_wbuf_free(&streams);
    return rc;
}

int wk_cg_encode(const wk_cg_params *p, const wk_kv_tensor *t, int layer0, int nlayers, int token0, int ntokens,
                 uint8_t **out, size_t *out_len, wk_cg_stats *stats, wk_err *err) {
    int rc = check_params(p, err);
    if (rc) return rc;
    if (layer0 < 0 || nlayers < 1 || layer0 + nlayers > t->layers || token0 < 0 || ntokens < 1 ||
        token0 + ntokens > t->tokens || t->layers > 65535 || t->head_dim > 65535)
        return wk_err_set(err, WK_EINVAL, "cachegen: layers %d+%d, tokens %d+%d outside the %dx%d tensor", layer0,
                          nlayers, token0, ntokens, t->layers, t->tokens);
    wk_cg_stats st = {WK_CG_HEADER_BYTES, 0, 0, 0, 0};
    cg_side sides[2];
    memset(sides, 0, sizeof sides);
    int C = t->kv_heads * t->head_dim;
    float *row = malloc(sizeof(float) * (size_t)C), *rec = malloc(sizeof(float) * (size_t)C * ntokens);
    rc = side_alloc(&sides[0], ntokens, t->kv_heads, t->head_dim, err);
    if (!rc) rc = side_alloc(&sides[1], ntokens, t->kv_heads, t->head_dim, err);
    if (!rc && (!row || !rec)) rc = wk_err_set(err, WK_ENOMEM, "cachegen: out of memory");
    wk_wbuf w;
    wk_wbuf_init(&w);
    if (!rc) {
        wk_wbuf_bytes(&w, "WKCG", 4);
        uint8_t head[4] = {WK_CG_VERSION, (uint8_t)p->level, (uint8_t)(p->delta ? 1 : 0), (uint8_t)p->anchor_group};
        wk_wbuf_bytes(&w, head, 4);
        wk_wbuf_u8(&w, (uint8_t)p->table_bits);
        wk_wbuf_u8(&w, (uint8_t)p->stream_channels);
        wk_wbuf_u16(&w, (uint16_t)t->layers);
        wk_wbuf_u16(&w, (uint16_t)layer0);
        wk_wbuf_u16(&w, (uint16_t)nlayers);
        wk_wbuf_u16(&w, (uint16_t)t->kv_heads);
        wk_wbuf_u16(&w, (uint16_t)t->head_dim);
        wk_wbuf_u32(&w, (uint32_t)token0);
        wk_wbuf_u32(&w, (uint32_t)ntokens);
    }
    for (int l = layer0; !rc && l < layer0 + nlayers; l++)
        rc = encode_layer(p, t, l, token0, sides, row, rec, &w, &st, err);
    if (!rc) rc = wk_wbuf_check(&w, err);
    free(row);
    free(rec);
    side_free(&sides[0]);
    side_free(&sides[1]);
    if (rc) {
        wk_wbuf_free(&w);
        return rc;
    }
    *out = w.data;
    *out_len = w.len;
    if (stats) *stats = st;
    return 0;
}

/* ---- decoder ---- */

typedef wk_cg_header cg_header;

static int read_header(wk_rbuf *r, int layers, int kv_heads, int tokens, int head_dim, cg_header *h, wk_err *err) {
    uint8_t b[10];
    uint16_t f[5];
    if (wk_rbuf_bytes(r, b, 10, "header", err)) return WK_EFORMAT;
    if (memcmp(b, "WKCG", 4) != 0) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 0 (magic): bad magic");
    if (b[4] != WK_CG_VERSION)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 4 (version): %u, expected %d", b[4], WK_CG_VERSION);
    h->level = b[5];
    h->delta = b[6] & 1;
    h->group = b[7];
    h->table_bits = b[8];
    h->stream_channels = b[9];
    if (h->level >= WK_CG_LEVELS) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 5 (level): %d", h->level);
    if (b[6] > 1) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 6 (flags): 0x%x", b[6]);
    if (h->group < 1) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 7 (anchor_group): 0");
    if (h->table_bits < 6 || h->table_bits > WK_RC_MAX_TOTAL_BITS)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 8 (table_bits): %d", h->table_bits);
    if (h->stream_channels < 1) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 9 (stream_channels): 0");
    for (int i = 0; i < 5; i++)
        if (wk_rbuf_u16(r, &f[i], "header", err)) return WK_EFORMAT;
    h->layers = f[0];
    h->layer0 = f[1];
    h->nlayers = f[2];
    h->heads = f[3];
    h->dim = f[4];
    if (wk_rbuf_u32(r, &h->token0, "token0", err) || wk_rbuf_u32(r, &h->ntokens, "ntokens", err)) return WK_EFORMAT;
    if (h->layers != layers || h->heads != kv_heads || h->dim != head_dim)
        return wk_err_set(err, WK_EFORMAT,
                          "cachegen chunk: offset 10 (shape): layers %d kv_heads %d head_dim %d, tensor has %d %d %d",
                          h->layers, h->heads, h->dim, layers, kv_heads, head_dim);
    if (h->nlayers < 1 || h->layer0 + h->nlayers > h->layers)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 12 (layer0/nlayers): %d+%d past %d layers",
                          h->layer0, h->nlayers, h->layers);
    if (h->ntokens < 1 || h->token0 > (uint32_t)tokens || h->ntokens > (uint32_t)tokens - h->token0)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 20 (token0/ntokens): %u+%u past %d tokens",
                          h->token0, h->ntokens, tokens);
    /* each token needs 4 bytes of scales per layer: reject impossible token counts before allocating */
    if ((uint64_t)h->ntokens * 4 * (uint64_t)h->nlayers > r->len)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: %u tokens x %d layers cannot fit in %zu bytes", h->ntokens,
                          h->nlayers, r->len);
    return 0;
}

int wk_cg_read_header(const uint8_t *in, size_t len, int layers, int kv_heads, int tokens, int head_dim,
                      wk_cg_header *h, wk_err *err) {
    wk_rbuf r;
    wk_rbuf_init(&r, in, len, "cachegen chunk");
    return read_header(&r, layers, kv_heads, tokens, head_dim, h, err);
}

/* One stream: channels [d0, d1) of head h. */
static int decode_group(const cg_header *hd, const cg_side *s, int layer, int kv, int h, int d0, int d1,
                        const uint8_t *in, size_t len, wk_kv_tensor *t, wk_err *err) {
    wk_rc_dec dec;
    if (wk_rc_dec_init(&dec, in, len, err)) return WK_EFORMAT;
    uint16_t *dst = kv ? t->v : t->k;
    for (int tt = 0; tt < s->T; tt++) {
        float step = wk_half_to_float(s->scale[tt]) / (float)s->M;
        int anchor = !hd->delta || tt % hd->group == 0;
        uint16_t *x = dst + wk_kv_row(t, layer, h, (int)hd->token0 + tt);
        const uint16_t *xa = dst + wk_kv_row(t, layer, h, (int)hd->token0 + tt - (anchor ? 0 : tt % hd->group));
        for (int d = d0; d < d1; d++) {
            int sym = wk_rc_dec_get(&dec, &s->tab[h * s->D + d], err);
            if (sym < 0) return WK_EFORMAT;
            float base = anchor ? 0.0f : wk_half_to_float(xa[d]);
            x[d] = wk_float_to_half(base + dequant_symbol(sym, step, s->M));
        }
    }
    if (wk_rc_dec_used(&dec) != len)
        return wk_err_set(err, WK_EFORMAT, "stream of %zu bytes has %zu trailing bytes", len,
                          len - wk_rc_dec_used(&dec));
    return 0;
}

/* lens: room for 2 * heads * ceil(dim / stream_channels) stream lengths */
static int decode_layer(const cg_header *hd, int layer, wk_rbuf *r, cg_side sides[2], uint64_t *lens,
                        wk_kv_tensor *t, wk_err *err) {
    uint32_t size;
    size_t size_at = r->pos;
    if (wk_rbuf_u32(r, &size, "layer_bytes", err)) return WK_EFORMAT;
    if (size > r->len - r->pos)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: layer %d at offset %zu: %u bytes, %zu left", layer,
                          size_at, size, r->len - r->pos);
    const size_t end = r->pos + size;
    for (int kv = 0; kv < 2; kv++) {
        sides[kv].M = wk_cg_bins(hd->level, layer, hd->layers, kv) / 2 - 1;
        sides[kv].nsym = 2 * sides[kv].M + 1;
        for (uint32_t tt = 0; tt < hd->ntokens; tt++)
            if (wk_rbuf_u16(r, &sides[kv].scale[tt], "scales", err)) return WK_EFORMAT;
    }
    for (int kv = 0; kv < 2; kv++)
        for (int c = 0; c < sides[kv].C; c++)
            if (wk_rc_table_read(&sides[kv].tab[c], sides[kv].nsym, hd->table_bits, r, err)) return WK_EFORMAT;
    const int G = hd->stream_channels, ng = (hd->dim + G - 1) / G, ns = 2 * hd->heads * ng;
    uint64_t total = 0;
    for (int i = 0; i < ns; i++) {
        if (wk_rbuf_varint(r, &lens[i], "stream length", err)) return WK_EFORMAT;
        if (lens[i] > r->len) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: stream length %llu past the end",
                                                (unsigned long long)lens[i]);
        total += lens[i];
    }
    if (r->pos > end || total != end - r->pos)
        return wk_err_set(err, WK_EFORMAT,
                          "cachegen chunk: layer %d streams need %llu bytes at offset %zu, the layer has %lld", layer,
                          (unsigned long long)total, r->pos, (long long)end - (long long)r->pos);
    for (int i = 0; i < ns; i++) {
        int kv = i / (hd->heads * ng), h = i / ng % hd->heads, g = i % ng;
        size_t at = r->pos, n = (size_t)lens[i];
        const uint8_t *p = wk_rbuf_take(r, n, "stream", err);
        if (!p || decode_group(hd, &sides[kv], layer, kv, h, g * G, g * G + G < hd->dim ? g * G + G : hd->dim, p, n,
                               t, err))
            return wk_err_prefix(err, "cachegen chunk: layer %d %s head %d channels %d.. stream at offset %zu", layer,
                                 kv ? "V" : "K", h, g * G, at);
    }
    return 0;
}

int wk_cg_decode(const uint8_t *in, size_t len, wk_kv_tensor *t, wk_err *err) {
    wk_rbuf r;
    wk_rbuf_init(&r, in, len, "cachegen chunk");
    cg_header hd;
    int rc = read_header(&r, t->layers, t->kv_heads, t->tokens, t->head_dim, &hd, err);
    if (rc) return rc;
    cg_side sides[2];
    memset(sides, 0, sizeof sides);
    rc = side_alloc(&sides[0], (int)hd.ntokens, hd.heads, hd.dim, err);
    if (!rc) rc = side_alloc(&sides[1], (int)hd.ntokens, hd.heads, hd.dim, err);
    size_t nstreams = 2 * (size_t)hd.heads * (size_t)((hd.dim + hd.stream_channels - 1) / hd.stream_channels);
    uint64_t *lens = malloc(sizeof(uint64_t) * nstreams);
    if (!rc && !lens) rc = wk_err_set(err, WK_ENOMEM, "cachegen: out of memory");
    for (int l = hd.layer0; !rc && l < hd.layer0 + hd.nlayers; l++) rc = decode_layer(&hd, l, &r, sides, lens, t, err);
    free(lens);
    if (!rc && r.pos != len)
        rc = wk_err_set(err, WK_EFORMAT, "cachegen chunk: %zu trailing bytes at offset %zu", len - r.pos, r.pos);
    side_free(&sides[0]);
    side_free(&sides[1]);
    return rc;
}
