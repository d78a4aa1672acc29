/* CRC32C (Castagnoli), as used by the wire protocol and stored KV files to detect corruption. */
#ifndef WIKV_CORE_CRC32C_H
#define WIKV_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start. crc32c("123456789") = 0xE3069283. */
uint32_t wk_crc32c(uint32_t crc, const void *data, size_t len);

#endif
