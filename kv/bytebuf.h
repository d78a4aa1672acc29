/* Little-endian byte buffers shared by the KV codecs: a growable writer and a bounds-checked reader.
 * Every read checks the remaining length and reports the offset at fault, so decoders built on it
 * cannot run past their input. */
#ifndef WIKV_KV_BYTEBUF_H
#define WIKV_KV_BYTEBUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int failed; /* an allocation failed: later writes are dropped, wk_wbuf_finish reports it */
} wk_wbuf;

void wk_wbuf_init(wk_wbuf *w);
void wk_wbuf_free(wk_wbuf *w);
/* Makes room for n more bytes and returns a pointer to them (NULL after a failed allocation). */
uint8_t *wk_wbuf_grow(wk_wbuf *w, size_t n);
void wk_wbuf_bytes(wk_wbuf *w, const void *p, size_t n);
void wk_wbuf_u8(wk_wbuf *w, uint8_t v);
void wk_wbuf_u16(wk_wbuf *w, uint16_t v);
void wk_wbuf_u32(wk_wbuf *w, uint32_t v);
void wk_wbuf_u64(wk_wbuf *w, uint64_t v);
void wk_wbuf_varint(wk_wbuf *w, uint64_t v); /* LEB128 */
/* Returns 0, or WK_ENOMEM if any write failed. */
int wk_wbuf_check(const wk_wbuf *w, wk_err *err);

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    const char *what; /* named in error messages, e.g. "cachegen chunk" */
} wk_rbuf;

void wk_rbuf_init(wk_rbuf *r, const void *data, size_t len, const char *what);
int wk_rbuf_bytes(wk_rbuf *r, void *out, size_t n, const char *field, wk_err *err);
/* Returns a pointer to the next n bytes and skips them, or NULL with err set. */
const uint8_t *wk_rbuf_take(wk_rbuf *r, size_t n, const char *field, wk_err *err);
int wk_rbuf_u8(wk_rbuf *r, uint8_t *v, const char *field, wk_err *err);
int wk_rbuf_u16(wk_rbuf *r, uint16_t *v, const char *field, wk_err *err);
int wk_rbuf_u32(wk_rbuf *r, uint32_t *v, const char *field, wk_err *err);
int wk_rbuf_u64(wk_rbuf *r, uint64_t *v, const char *field, wk_err *err);
int wk_rbuf_varint(wk_rbuf *r, uint64_t *v, const char *field, wk_err *err);

static inline void wk_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline uint16_t wk_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wk_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t wk_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
