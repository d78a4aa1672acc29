/* Range coder with carry propagation over static frequency tables (see rangecoder.h). */
#include "kv/rangecoder.h"

#include <math.h>
#include <string.h>

#define TOP (1u << 24)

int wk_rc_table_from_counts(wk_rc_table *t, const uint64_t *counts, int nsym, int total_bits, wk_err *err) {
    if (nsym < 1 || nsym > WK_RC_MAX_SYMBOLS || total_bits < 1 || total_bits > WK_RC_MAX_TOTAL_BITS ||
        (1 << total_bits) < nsym)
        return wk_err_set(err, WK_EINVAL, "range coder: table of %d symbols at %d bits", nsym, total_bits);
    const uint32_t total = 1u << total_bits;
    uint64_t sum = 0;
    for (int s = 0; s < nsym; s++) sum += counts[s];
    uint32_t freq[WK_RC_MAX_SYMBOLS];
    uint32_t got = 0;
    for (int s = 0; s < nsym; s++) {
        if (sum == 0) freq[s] = total / (uint32_t)nsym + ((uint32_t)s < total % (uint32_t)nsym);
        else if (counts[s] == 0) freq[s] = 0;
        else {
            double f = (double)counts[s] * total / (double)sum;
            freq[s] = f < 1.0 ? 1u : (uint32_t)(f + 0.5);
        }
        got += freq[s];
    }
    /* fix rounding: take from / give to the most frequent symbols, never below 1 */
    while (got != total) {
        int best = -1;
        for (int s = 0; s < nsym; s++)
            if (freq[s] > (got > total ? 1u : 0u) && (best < 0 || freq[s] > freq[best])) best = s;
        uint32_t step = got > total ? got - total : total - got;
        if (got > total) {
            uint32_t room = freq[best] - 1, d = step < room ? step : room;
            if (d > freq[best] / 2 && freq[best] > 2) d = freq[best] / 2; /* spread big corrections */
            if (d == 0) d = 1;
            freq[best] -= d;
            got -= d;
        } else {
            freq[best] += step;
            got += step;
        }
    }
    t->nsym = nsym;
    t->total_bits = total_bits;
    t->cum[0] = 0;
    for (int s = 0; s < nsym; s++) t->cum[s + 1] = t->cum[s] + freq[s];
    return 0;
}

double wk_rc_table_cost_bits(const wk_rc_table *t, const uint64_t *counts) {
    double bits = 0;
    for (int s = 0; s < t->nsym; s++)
        if (counts[s]) bits += (double)counts[s] * (t->total_bits - log2((double)wk_rc_freq(t, s)));
    return bits;
}

void wk_rc_table_write(const wk_rc_table *t, wk_wbuf *w) {
    int lo = 0, hi = t->nsym - 1;
    while (lo < hi && wk_rc_freq(t, lo) == 0) lo++;
    while (hi > lo && wk_rc_freq(t, hi) == 0) hi--;
    wk_wbuf_u8(w, (uint8_t)lo);
    wk_wbuf_u8(w, (uint8_t)hi);
    for (int s = lo; s <= hi; s++) wk_wbuf_varint(w, wk_rc_freq(t, s));
}

int wk_rc_table_read(wk_rc_table *t, int nsym, int total_bits, wk_rbuf *r, wk_err *err) {
    size_t at = r->pos;
    uint8_t lo, hi;
    if (nsym < 1 || nsym > WK_RC_MAX_SYMBOLS || total_bits < 1 || total_bits > WK_RC_MAX_TOTAL_BITS)
        return wk_err_set(err, WK_EINVAL, "range coder: table of %d symbols at %d bits", nsym, total_bits);
    if (wk_rbuf_u8(r, &lo, "table lo", err) || wk_rbuf_u8(r, &hi, "table hi", err)) return WK_EFORMAT;
    if (lo > hi || hi >= nsym)
        return wk_err_set(err, WK_EFORMAT, "%s: frequency table at offset %zu: symbols %u..%u outside 0..%d", r->what,
                          at, lo, hi, nsym - 1);
    uint64_t sum = 0;
    t->nsym = nsym;
    t->total_bits = total_bits;
    t->cum[0] = 0;
    for (int s = 0; s < nsym; s++) {
        uint64_t f = 0;
        if (s >= lo && s <= hi && wk_rbuf_varint(r, &f, "table frequency", err)) return WK_EFORMAT;
        if (f > (1u << total_bits) || (sum += f) > (1u << total_bits)) /* first test: no wrap-around of sum */
            return wk_err_set(err, WK_EFORMAT, "%s: frequency table at offset %zu sums past 2^%d", r->what, at,
                              total_bits);
        t->cum[s + 1] = (uint32_t)sum;
    }
    if (sum != (1u << total_bits))
        return wk_err_set(err, WK_EFORMAT, "%s: frequency table at offset %zu sums to %llu, not 2^%d", r->what, at,
                          (unsigned long long)sum, total_bits);
    return 0;
}

/* ---- encoder ---- */

void wk_rc_enc_init(wk_rc_enc *e, wk_wbuf *out) {
    e->low = 0;
    e->range = 0xFFFFFFFFu;
    e->cache = 0;
    e->pending = 1;
    e->out = out;
}

static void shift_low(wk_rc_enc *e) {
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32);
        uint8_t b = e->cache;
        do {
            wk_wbuf_u8(e->out, (uint8_t)(b + carry));
            b = 0xFF;
        } while (--e->pending != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->pending++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static void enc_range(wk_rc_enc *e, uint32_t cum, uint32_t freq, int total_bits) {
    uint32_t r = e->range >> total_bits;
    e->low += (uint64_t)r * cum;
    e->range = r * freq;
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

void wk_rc_enc_put(wk_rc_enc *e, const wk_rc_table *t, int s) {
    enc_range(e, t->cum[s], t->cum[s + 1] - t->cum[s], t->total_bits);
}

void wk_rc_enc_bits(wk_rc_enc *e, uint32_t value, int bits) { enc_range(e, value, 1, bits); }

void wk_rc_enc_finish(wk_rc_enc *e) {
    for (int i = 0; i < 5; i++) shift_low(e);
}

/* ---- decoder ---- */

static uint8_t next_byte(wk_rc_dec *d) {
    if (d->pos >= d->len) {
        d->overrun = 1;
        return 0;
    }
    return d->in[d->pos++];
}

int wk_rc_dec_init(wk_rc_dec *d, const uint8_t *in, size_t len, wk_err *err) {
    memset(d, 0, sizeof *d);
    d->in = in;
    d->len = in ? len : 0;
    d->range = 0xFFFFFFFFu;
    if (d->len < 5) return wk_err_set(err, WK_EFORMAT, "range-coded stream of %zu bytes (minimum 5)", len);
    if (next_byte(d) != 0) return wk_err_set(err, WK_EFORMAT, "range-coded stream: first byte is not 0");
    for (int i = 0; i < 4; i++) d->code = d->code << 8 | next_byte(d);
    return 0;
}

static int dec_update(wk_rc_dec *d, uint32_t r, uint32_t cum, uint32_t freq, wk_err *err) {
    d->code -= r * cum;
    d->range = r * freq;
    while (d->range < TOP) {
        d->range <<= 8;
        d->code = d->code << 8 | next_byte(d);
    }
    if (d->overrun)
        return wk_err_set(err, WK_EFORMAT, "range-coded stream of %zu bytes ends before its symbols", d->len);
    return 0;
}

int wk_rc_dec_get(wk_rc_dec *d, const wk_rc_table *t, wk_err *err) {
    uint32_t r = d->range >> t->total_bits;
    uint32_t v = r ? d->code / r : UINT32_MAX;
    if (v >= t->cum[t->nsym])
        return wk_err_set(err, WK_EFORMAT, "range-coded stream: garbage near byte %zu", d->pos);
    int lo = 0, hi = t->nsym - 1; /* largest s with cum[s] <= v (freq > 0 by construction) */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (t->cum[mid] <= v) lo = mid;
        else hi = mid - 1;
    }
    if (dec_update(d, r, t->cum[lo], t->cum[lo + 1] - t->cum[lo], err)) return WK_EFORMAT;
    return lo;
}

int wk_rc_dec_bits(wk_rc_dec *d, int bits, wk_err *err) {
    uint32_t r = d->range >> bits;
    uint32_t v = r ? d->code / r : UINT32_MAX;
    if (v >= (1u << bits)) return wk_err_set(err, WK_EFORMAT, "range-coded stream: garbage near byte %zu", d->pos);
    if (dec_update(d, r, v, 1, err)) return WK_EFORMAT;
    return (int)v;
}

void wk_rc_encode_array(const wk_rc_table *t, const uint8_t *syms, size_t n, wk_wbuf *w) {
    wk_rc_enc e;
    wk_rc_enc_init(&e, w);
    for (size_t i = 0; i < n; i++) wk_rc_enc_put(&e, t, syms[i]);
    wk_rc_enc_finish(&e);
}

int wk_rc_decode_array(const wk_rc_table *t, const uint8_t *in, size_t len, uint8_t *syms, size_t n, wk_err *err) {
    wk_rc_dec d;
    if (wk_rc_dec_init(&d, in, len, err)) return WK_EFORMAT;
    for (size_t i = 0; i < n; i++) {
        int s = wk_rc_dec_get(&d, t, err);
        if (s < 0) return wk_err_prefix(err, "symbol %zu", i);
        syms[i] = (uint8_t)s;
    }
    return 0;
}
