/* Bytewise CRC32C with a table built on the fly per call chunk: small, portable, no global state.
 * Throughput is not critical here (frames are checked once); a table is computed per call. */
#include "core/crc32c.h"

static uint32_t crc32c_byte(uint32_t crc) {
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    return crc;
}

uint32_t wk_crc32c(uint32_t crc, const void *data, size_t len) {
    uint32_t table[256];
    const unsigned char *p = data;
    crc = ~crc;
    if (len < 256) { /* short input: building the table costs more than it saves */
        for (size_t i = 0; i < len; i++) crc = crc32c_byte(crc ^ p[i]);
        return ~crc;
    }
    for (uint32_t i = 0; i < 256; i++) table[i] = crc32c_byte(i);
    for (size_t i = 0; i < len; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}
