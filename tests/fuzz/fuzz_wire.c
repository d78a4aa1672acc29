/* Fuzz target: the wire frame decoder. Whatever decodes must re-encode to the same bytes (the
 * decoder accepts exactly what the encoder can write). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "net/wire.h"

/* A stream of frames: decode one after the other, as a receiver does. */
static void decode_stream(const uint8_t *data, size_t size) {
    wk_err err;
    size_t off = 0;
    while (off < size) {
        wk_wire_msg m;
        size_t used = 0;
        if (wk_wire_decode(data + off, size - off, &m, &used, &err) != 0) break;
        if (used < WK_WIRE_HEADER_BYTES || used > size - off) abort();
        uint8_t *again = malloc(used);
        size_t len = 0;
        if (!again) abort();
        if (wk_wire_encode(&m, again, used, &len, &err) != 0 || len != used || memcmp(again, data + off, used) != 0)
            abort();
        free(again);
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wk_wire_header h;
    wk_err err;
    (void)wk_wire_decode_header(data, size, &h, &err);
    decode_stream(data, size);
    /* again with the first frame's CRC made right, so mutations reach the payload decoders */
    if (size < WK_WIRE_HEADER_BYTES) return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed) abort();
    memcpy(fixed, data, size);
    uint32_t declared = (uint32_t)fixed[12] | (uint32_t)fixed[13] << 8 | (uint32_t)fixed[14] << 16 |
                        (uint32_t)fixed[15] << 24;
    size_t avail = size - WK_WIRE_HEADER_BYTES;
    size_t n = declared < avail ? declared : avail;
    uint32_t crc = wk_crc32c(wk_crc32c(0, fixed, 28), fixed + WK_WIRE_HEADER_BYTES, n);
    for (int i = 0; i < 4; i++) fixed[28 + i] = (uint8_t)(crc >> (8 * i));
    decode_stream(fixed, size);
    free(fixed);
    return 0;
}
