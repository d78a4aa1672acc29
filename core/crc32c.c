/* CRC32C with tables built on the fly per call: small, portable, no global state. Short inputs go byte
 * by byte; long ones (stored KV files of gigabytes, checked on every load) by slicing-by-8: eight
 * tables, eight bytes per step, about five times the bytewise rate. */
#include "core/crc32c.h"

#include <string.h>

static uint32_t crc32c_byte(uint32_t crc) {
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    return crc;
}

/* t[k][b]: the CRC of byte b followed by k zero bytes. */
static void slice_tables(uint32_t t[8][256]) {
    for (uint32_t i = 0; i < 256; i++) t[0][i] = crc32c_byte(i);
    for (int k = 1; k < 8; k++)
        for (uint32_t i = 0; i < 256; i++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
}

uint32_t wk_crc32c(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = data;
    crc = ~crc;
    if (len < 256) { /* short input: building a table costs more than it saves */
        for (size_t i = 0; i < len; i++) crc = crc32c_byte(crc ^ p[i]);
        return ~crc;
    }
    uint32_t t[8][256];
    slice_tables(t);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        /* little-endian byte order whatever the host's: assembled from bytes */
        uint32_t lo = crc ^ ((uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24);
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][p[i + 4]] ^
              t[2][p[i + 5]] ^ t[1][p[i + 6]] ^ t[0][p[i + 7]];
    }
    for (; i < len; i++) crc = t[0][(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}
