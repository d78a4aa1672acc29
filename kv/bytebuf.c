/* Growable little-endian writer and bounds-checked reader for the KV codec formats. */
#include "kv/bytebuf.h"

#include <stdlib.h>
#include <string.h>

void wk_wbuf_init(wk_wbuf *w) { memset(w, 0, sizeof *w); }

void wk_wbuf_free(wk_wbuf *w) {
    free(w->data);
    wk_wbuf_init(w);
}

uint8_t *wk_wbuf_grow(wk_wbuf *w, size_t n) {
    if (w->failed) return NULL;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        uint8_t *p = realloc(w->data, cap);
        if (!p) {
            w->failed = 1;
            return NULL;
        }
        w->data = p;
        w->cap = cap;
    }
    uint8_t *at = w->data + w->len;
    w->len += n;
    return at;
}

void wk_wbuf_bytes(wk_wbuf *w, const void *p, size_t n) {
    uint8_t *at = wk_wbuf_grow(w, n);
    if (at && n) memcpy(at, p, n);
}

void wk_wbuf_u8(wk_wbuf *w, uint8_t v) { wk_wbuf_bytes(w, &v, 1); }

void wk_wbuf_u16(wk_wbuf *w, uint16_t v) {
    uint8_t *at = wk_wbuf_grow(w, 2);
    if (at) wk_put_u16(at, v);
}

void wk_wbuf_u32(wk_wbuf *w, uint32_t v) {
    uint8_t *at = wk_wbuf_grow(w, 4);
    if (at) wk_put_u32(at, v);
}

void wk_wbuf_u64(wk_wbuf *w, uint64_t v) {
    wk_wbuf_u32(w, (uint32_t)v);
    wk_wbuf_u32(w, (uint32_t)(v >> 32));
}

void wk_wbuf_varint(wk_wbuf *w, uint64_t v) {
    while (v >= 0x80) {
        wk_wbuf_u8(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    wk_wbuf_u8(w, (uint8_t)v);
}

int wk_wbuf_check(const wk_wbuf *w, wk_err *err) {
    return w->failed ? wk_err_set(err, WK_ENOMEM, "out of memory growing an encode buffer to %zu bytes", w->len)
                     : 0;
}

void wk_rbuf_init(wk_rbuf *r, const void *data, size_t len, const char *what) {
    r->data = data;
    r->len = data ? len : 0;
    r->pos = 0;
    r->what = what ? what : "input";
}

const uint8_t *wk_rbuf_take(wk_rbuf *r, size_t n, const char *field, wk_err *err) {
    if (n > r->len - r->pos) {
        wk_err_set(err, WK_EFORMAT, "%s: truncated at offset %zu reading %s (%zu bytes needed, %zu left)", r->what,
                   r->pos, field, n, r->len - r->pos);
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

int wk_rbuf_bytes(wk_rbuf *r, void *out, size_t n, const char *field, wk_err *err) {
    const uint8_t *p = wk_rbuf_take(r, n, field, err);
    if (!p) return WK_EFORMAT;
    if (n) memcpy(out, p, n);
    return 0;
}

int wk_rbuf_u8(wk_rbuf *r, uint8_t *v, const char *field, wk_err *err) {
    const uint8_t *p = wk_rbuf_take(r, 1, field, err);
    if (!p) return WK_EFORMAT;
    *v = p[0];
    return 0;
}

int wk_rbuf_u16(wk_rbuf *r, uint16_t *v, const char *field, wk_err *err) {
    const uint8_t *p = wk_rbuf_take(r, 2, field, err);
    if (!p) return WK_EFORMAT;
    *v = wk_get_u16(p);
    return 0;
}

int wk_rbuf_u32(wk_rbuf *r, uint32_t *v, const char *field, wk_err *err) {
    const uint8_t *p = wk_rbuf_take(r, 4, field, err);
    if (!p) return WK_EFORMAT;
    *v = wk_get_u32(p);
    return 0;
}

int wk_rbuf_u64(wk_rbuf *r, uint64_t *v, const char *field, wk_err *err) {
    uint32_t lo, hi;
    if (wk_rbuf_u32(r, &lo, field, err) || wk_rbuf_u32(r, &hi, field, err)) return WK_EFORMAT;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

int wk_rbuf_varint(wk_rbuf *r, uint64_t *v, const char *field, wk_err *err) {
    size_t start = r->pos;
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (wk_rbuf_u8(r, &b, field, err)) return WK_EFORMAT;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return wk_err_set(err, WK_EFORMAT, "%s: varint %s at offset %zu is longer than 10 bytes", r->what, field, start);
}
