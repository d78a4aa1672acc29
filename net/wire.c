/* Encoding and decoding of wire frames (layout in net/wire.h and net/PROTOCOL.md). All integers are
 * little-endian and read byte by byte, so no alignment or host byte order is assumed. Every decoder
 * bounds-checks before it reads and names the field (and its offset in the frame) when it rejects. */
#include "net/wire.h"

#include <stdio.h>
#include <string.h>

#include "core/crc32c.h"

/* ---- byte helpers -------------------------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }

const char *wk_wire_type_name(int type) {
    switch (type) {
    case WK_FRAME_REQUEST: return "REQUEST";
    case WK_FRAME_STREAM_INFO: return "STREAM_INFO";
    case WK_FRAME_UNIT_DATA: return "UNIT_DATA";
    case WK_FRAME_MORE: return "MORE";
    case WK_FRAME_STOP: return "STOP";
    case WK_FRAME_END: return "END";
    case WK_FRAME_ERROR: return "ERROR";
    case WK_FRAME_PROGRESS: return "PROGRESS";
    default: return "unknown";
    }
}

/* ---- frames -------------------------------------------------------------------------------- */

static uint32_t frame_crc(const uint8_t *header, const uint8_t *payload, size_t payload_len) {
    uint32_t crc = wk_crc32c(0, header, WK_WIRE_HEADER_BYTES - 4);
    return payload_len ? wk_crc32c(crc, payload, payload_len) : crc;
}

int wk_wire_encode_frame(const wk_wire_header *h, const void *payload, size_t payload_len, uint8_t *buf, size_t cap,
                         size_t *len, wk_err *err) {
    if (h->type < WK_FRAME_REQUEST || h->type > WK_FRAME_PROGRESS)
        return wk_err_set(err, WK_EINVAL, "wire encode: type %u is not a frame type", h->type);
    if (h->flags & ~WK_WIRE_FLAGS_KNOWN)
        return wk_err_set(err, WK_EINVAL, "wire encode: flags 0x%x has unknown bits", h->flags);
    if (payload_len > WK_WIRE_MAX_PAYLOAD)
        return wk_err_set(err, WK_EINVAL, "wire encode: payload_len %zu exceeds %u", payload_len, WK_WIRE_MAX_PAYLOAD);
    if (cap < WK_WIRE_HEADER_BYTES + payload_len)
        return wk_err_set(err, WK_EINVAL, "wire encode: buffer of %zu bytes, frame needs %zu", cap,
                          WK_WIRE_HEADER_BYTES + payload_len);
    memcpy(buf, WK_WIRE_MAGIC, 4);
    buf[4] = WK_WIRE_VERSION;
    buf[5] = h->type;
    put_u16(buf + 6, h->flags);
    put_u32(buf + 8, h->unit_id);
    put_u32(buf + 12, (uint32_t)payload_len);
    put_u64(buf + 16, h->send_time_us);
    put_u32(buf + 24, h->stream_id);
    /* memmove: callers may build the payload in place right after the header */
    if (payload_len && payload != buf + WK_WIRE_HEADER_BYTES) memmove(buf + WK_WIRE_HEADER_BYTES, payload, payload_len);
    put_u32(buf + 28, frame_crc(buf, buf + WK_WIRE_HEADER_BYTES, payload_len));
    *len = WK_WIRE_HEADER_BYTES + payload_len;
    return 0;
}

int wk_wire_decode_header(const uint8_t *buf, size_t len, wk_wire_header *h, wk_err *err) {
    if (len < WK_WIRE_HEADER_BYTES)
        return wk_err_set(err, WK_EFORMAT, "wire frame truncated: header needs %d bytes, have %zu",
                          WK_WIRE_HEADER_BYTES, len);
    if (memcmp(buf, WK_WIRE_MAGIC, 4) != 0)
        return wk_err_set(err, WK_EFORMAT, "wire header offset 0: magic %02x%02x%02x%02x is not \"%s\"", buf[0],
                          buf[1], buf[2], buf[3], WK_WIRE_MAGIC);
    h->version = buf[4];
    if (h->version != WK_WIRE_VERSION)
        return wk_err_set(err, WK_EFORMAT, "wire header offset 4: version %u not supported (this build speaks %d)",
                          h->version, WK_WIRE_VERSION);
    h->type = buf[5];
    if (h->type < WK_FRAME_REQUEST || h->type > WK_FRAME_PROGRESS)
        return wk_err_set(err, WK_EFORMAT, "wire header offset 5: type %u unknown", h->type);
    h->flags = get_u16(buf + 6);
    if (h->flags & ~WK_WIRE_FLAGS_KNOWN)
        return wk_err_set(err, WK_EFORMAT, "wire header offset 6: flags 0x%04x has reserved bits set", h->flags);
    h->unit_id = get_u32(buf + 8);
    h->payload_len = get_u32(buf + 12);
    if (h->payload_len > WK_WIRE_MAX_PAYLOAD)
        return wk_err_set(err, WK_EFORMAT, "wire header offset 12: payload_len %u exceeds the %u-byte limit",
                          h->payload_len, WK_WIRE_MAX_PAYLOAD);
    h->send_time_us = get_u64(buf + 16);
    h->stream_id = get_u32(buf + 24);
    h->crc = get_u32(buf + 28);
    return 0;
}

int wk_wire_decode_frame(const uint8_t *buf, size_t len, wk_wire_header *h, const uint8_t **payload,
                         size_t *frame_len, wk_err *err) {
    int rc = wk_wire_decode_header(buf, len, h, err);
    if (rc) return rc;
    size_t need = WK_WIRE_HEADER_BYTES + (size_t)h->payload_len;
    if (len < need)
        return wk_err_set(err, WK_EFORMAT, "wire %s frame truncated: payload_len says %u bytes, only %zu present",
                          wk_wire_type_name(h->type), h->payload_len, len - WK_WIRE_HEADER_BYTES);
    uint32_t crc = frame_crc(buf, buf + WK_WIRE_HEADER_BYTES, h->payload_len);
    if (crc != h->crc)
        return wk_err_set(err, WK_EFORMAT, "wire %s frame offset 28: crc32c 0x%08x does not match computed 0x%08x",
                          wk_wire_type_name(h->type), h->crc, crc);
    *payload = buf + WK_WIRE_HEADER_BYTES;
    *frame_len = need;
    return 0;
}

/* ---- payload writer / reader --------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t cap, off;
    int overflow;
} writer;

static uint8_t *w_take(writer *w, size_t n) {
    if (w->overflow || w->cap - w->off < n) {
        w->overflow = 1;
        return NULL;
    }
    uint8_t *at = w->p + w->off;
    w->off += n;
    return at;
}
static void w_u8(writer *w, uint8_t v) {
    uint8_t *p = w_take(w, 1);
    if (p) *p = v;
}
static void w_u32(writer *w, uint32_t v) {
    uint8_t *p = w_take(w, 4);
    if (p) put_u32(p, v);
}
static void w_u64(writer *w, uint64_t v) {
    uint8_t *p = w_take(w, 8);
    if (p) put_u64(p, v);
}
static void w_zero(writer *w, size_t n) {
    uint8_t *p = w_take(w, n);
    if (p) memset(p, 0, n);
}
static void w_bytes(writer *w, const void *src, size_t n) {
    uint8_t *p = w_take(w, n);
    if (p && n) memcpy(p, src, n);
}
/* String field: u16 length + bytes. Returns -1 when it does not fit its field limit. */
static int w_str(writer *w, const char *s, size_t field_cap) {
    size_t n = strnlen(s, field_cap);
    if (n >= field_cap) return -1;
    uint8_t *p = w_take(w, 2);
    if (p) put_u16(p, (uint16_t)n);
    w_bytes(w, s, n);
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t len, off;
    const char *type;
    wk_err *err;
} reader;

/* Frame offset of the next payload byte, for messages. */
static size_t r_at(const reader *r) { return WK_WIRE_HEADER_BYTES + r->off; }

static const uint8_t *r_take(reader *r, size_t n, const char *field, int *rc) {
    if (*rc) return NULL;
    if (r->len - r->off < n) {
        *rc = wk_err_set(r->err, WK_EFORMAT, "wire %s frame offset %zu: %s needs %zu bytes, payload has %zu left",
                         r->type, r_at(r), field, n, r->len - r->off);
        return NULL;
    }
    const uint8_t *at = r->p + r->off;
    r->off += n;
    return at;
}
static uint8_t r_u8(reader *r, const char *field, int *rc) {
    const uint8_t *p = r_take(r, 1, field, rc);
    return p ? *p : 0;
}
static uint32_t r_u32(reader *r, const char *field, int *rc) {
    const uint8_t *p = r_take(r, 4, field, rc);
    return p ? get_u32(p) : 0;
}
static uint64_t r_u64(reader *r, const char *field, int *rc) {
    const uint8_t *p = r_take(r, 8, field, rc);
    return p ? get_u64(p) : 0;
}
static void r_reserved(reader *r, size_t n, const char *field, int *rc) {
    size_t at = r_at(r);
    const uint8_t *p = r_take(r, n, field, rc);
    for (size_t i = 0; p && i < n; i++)
        if (p[i]) {
            *rc = wk_err_set(r->err, WK_EFORMAT, "wire %s frame offset %zu: %s must be zero", r->type, at + i, field);
            return;
        }
}
static void r_str(reader *r, char *dst, size_t cap, const char *field, int *rc) {
    size_t at = r_at(r);
    const uint8_t *p = r_take(r, 2, field, rc);
    if (!p) return;
    size_t n = get_u16(p);
    if (n >= cap) {
        *rc = wk_err_set(r->err, WK_EFORMAT, "wire %s frame offset %zu: %s length %zu exceeds its limit %zu", r->type,
                         at, field, n, cap - 1);
        return;
    }
    const uint8_t *s = r_take(r, n, field, rc);
    if (!s) return;
    if (memchr(s, 0, n)) {
        *rc = wk_err_set(r->err, WK_EFORMAT, "wire %s frame offset %zu: %s contains a NUL byte", r->type, at + 2,
                         field);
        return;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}
static void r_done(reader *r, int *rc) {
    if (!*rc && r->off != r->len)
        *rc = wk_err_set(r->err, WK_EFORMAT, "wire %s frame offset %zu: %zu unexpected bytes after the last field",
                         r->type, r_at(r), r->len - r->off);
}

/* ---- typed messages ------------------------------------------------------------------------ */

static int encode_payload(const wk_wire_msg *m, writer *w, wk_err *err) {
    switch (m->h.type) {
    case WK_FRAME_REQUEST: {
        const wk_wire_request *q = &m->u.request;
        if (w_str(w, q->task_id, sizeof q->task_id) || w_str(w, q->context_id, sizeof q->context_id) ||
            w_str(w, q->policy, sizeof q->policy) || w_str(w, q->params, sizeof q->params))
            return wk_err_set(err, WK_EINVAL, "wire encode REQUEST: a string field is not NUL-terminated");
        return 0;
    }
    case WK_FRAME_STREAM_INFO: {
        const wk_wire_stream_info *s = &m->u.info;
        if (s->n_levels < 1 || s->n_levels > WK_WIRE_MAX_LEVELS)
            return wk_err_set(err, WK_EINVAL, "wire encode STREAM_INFO: n_levels %u not in 1..%d", s->n_levels,
                              WK_WIRE_MAX_LEVELS);
        w_u32(w, s->n_units);
        w_u8(w, s->n_levels);
        w_zero(w, 3);
        for (int i = 0; i < s->n_levels; i++) w_u64(w, s->level_bytes[i]);
        return 0;
    }
    case WK_FRAME_UNIT_DATA: {
        const wk_wire_unit_data *d = &m->u.unit;
        if (d->level >= WK_WIRE_MAX_LEVELS)
            return wk_err_set(err, WK_EINVAL, "wire encode UNIT_DATA: level %u >= %d", d->level, WK_WIRE_MAX_LEVELS);
        w_u8(w, d->level);
        w_zero(w, 3);
        w_u32(w, d->n_units);
        w_bytes(w, d->data, d->data_len);
        return 0;
    }
    case WK_FRAME_MORE:
        if (m->u.more.level >= WK_WIRE_MAX_LEVELS)
            return wk_err_set(err, WK_EINVAL, "wire encode MORE: level %u >= %d", m->u.more.level, WK_WIRE_MAX_LEVELS);
        w_u8(w, m->u.more.level);
        w_zero(w, 3);
        w_u32(w, m->u.more.max_units);
        w_u64(w, m->u.more.max_bytes);
        return 0;
    case WK_FRAME_STOP: return 0;
    case WK_FRAME_END:
        w_u32(w, m->u.end.units_sent);
        w_zero(w, 4);
        w_u64(w, m->u.end.bytes_sent);
        return 0;
    case WK_FRAME_ERROR:
        w_u32(w, (uint32_t)m->u.error.code);
        if (w_str(w, m->u.error.message, sizeof m->u.error.message))
            return wk_err_set(err, WK_EINVAL, "wire encode ERROR: message is not NUL-terminated");
        return 0;
    case WK_FRAME_PROGRESS:
        w_u32(w, m->u.progress.tokens_prefilling);
        w_u32(w, m->u.progress.tokens_emitted);
        return 0;
    default: return wk_err_set(err, WK_EINVAL, "wire encode: type %u is not a frame type", m->h.type);
    }
}

int wk_wire_encode(const wk_wire_msg *m, uint8_t *buf, size_t cap, size_t *len, wk_err *err) {
    if (cap < WK_WIRE_HEADER_BYTES)
        return wk_err_set(err, WK_EINVAL, "wire encode: buffer of %zu bytes is smaller than a header", cap);
    writer w = {.p = buf + WK_WIRE_HEADER_BYTES, .cap = cap - WK_WIRE_HEADER_BYTES};
    int rc = encode_payload(m, &w, err);
    if (rc) return rc;
    if (w.overflow)
        return wk_err_set(err, WK_EINVAL, "wire encode %s: buffer of %zu bytes is too small",
                          wk_wire_type_name(m->h.type), cap);
    return wk_wire_encode_frame(&m->h, buf + WK_WIRE_HEADER_BYTES, w.off, buf, cap, len, err);
}

static void decode_payload(wk_wire_msg *m, reader *r, int *rc) {
    switch (m->h.type) {
    case WK_FRAME_REQUEST: {
        wk_wire_request *q = &m->u.request;
        r_str(r, q->task_id, sizeof q->task_id, "task_id", rc);
        r_str(r, q->context_id, sizeof q->context_id, "context_id", rc);
        r_str(r, q->policy, sizeof q->policy, "policy", rc);
        r_str(r, q->params, sizeof q->params, "params", rc);
        break;
    }
    case WK_FRAME_STREAM_INFO: {
        wk_wire_stream_info *s = &m->u.info;
        s->n_units = r_u32(r, "n_units", rc);
        size_t at = r_at(r);
        s->n_levels = r_u8(r, "n_levels", rc);
        if (!*rc && (s->n_levels < 1 || s->n_levels > WK_WIRE_MAX_LEVELS))
            *rc = wk_err_set(r->err, WK_EFORMAT, "wire STREAM_INFO frame offset %zu: n_levels %u not in 1..%d", at,
                             s->n_levels, WK_WIRE_MAX_LEVELS);
        r_reserved(r, 3, "reserved", rc);
        for (int i = 0; !*rc && i < s->n_levels; i++) s->level_bytes[i] = r_u64(r, "level_bytes", rc);
        break;
    }
    case WK_FRAME_UNIT_DATA: {
        wk_wire_unit_data *d = &m->u.unit;
        size_t at = r_at(r);
        d->level = r_u8(r, "level", rc);
        if (!*rc && d->level >= WK_WIRE_MAX_LEVELS)
            *rc = wk_err_set(r->err, WK_EFORMAT, "wire UNIT_DATA frame offset %zu: level %u >= %d", at, d->level,
                             WK_WIRE_MAX_LEVELS);
        r_reserved(r, 3, "reserved", rc);
        d->n_units = r_u32(r, "n_units", rc);
        if (!*rc && (uint64_t)m->h.unit_id + d->n_units > UINT32_MAX)
            *rc = wk_err_set(r->err, WK_EFORMAT, "wire UNIT_DATA frame offset 8: unit_id %u + n_units %u overflows",
                             m->h.unit_id, d->n_units);
        d->data_len = *rc ? 0 : r->len - r->off;
        d->data = *rc ? NULL : r->p + r->off;
        r->off += d->data_len;
        break;
    }
    case WK_FRAME_MORE: {
        size_t at = r_at(r);
        m->u.more.level = r_u8(r, "level", rc);
        if (!*rc && m->u.more.level >= WK_WIRE_MAX_LEVELS)
            *rc = wk_err_set(r->err, WK_EFORMAT, "wire MORE frame offset %zu: level %u >= %d", at, m->u.more.level,
                             WK_WIRE_MAX_LEVELS);
        r_reserved(r, 3, "reserved", rc);
        m->u.more.max_units = r_u32(r, "max_units", rc);
        m->u.more.max_bytes = r_u64(r, "max_bytes", rc);
        break;
    }
    case WK_FRAME_STOP: break;
    case WK_FRAME_END:
        m->u.end.units_sent = r_u32(r, "units_sent", rc);
        r_reserved(r, 4, "reserved", rc);
        m->u.end.bytes_sent = r_u64(r, "bytes_sent", rc);
        break;
    case WK_FRAME_ERROR:
        m->u.error.code = (int32_t)r_u32(r, "code", rc);
        r_str(r, m->u.error.message, sizeof m->u.error.message, "message", rc);
        break;
    case WK_FRAME_PROGRESS:
        m->u.progress.tokens_prefilling = r_u32(r, "tokens_prefilling", rc);
        m->u.progress.tokens_emitted = r_u32(r, "tokens_emitted", rc);
        break;
    default: break; /* decode_header already rejected it */
    }
    r_done(r, rc);
}

int wk_wire_decode(const uint8_t *buf, size_t len, wk_wire_msg *m, size_t *frame_len, wk_err *err) {
    memset(m, 0, sizeof *m);
    const uint8_t *payload = NULL;
    int rc = wk_wire_decode_frame(buf, len, &m->h, &payload, frame_len, err);
    if (rc) return rc;
    reader r = {.p = payload, .len = m->h.payload_len, .type = wk_wire_type_name(m->h.type), .err = err};
    decode_payload(m, &r, &rc);
    return rc;
}
