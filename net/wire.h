/* The wikv wire protocol between the edge server and the device (full description: net/PROTOCOL.md).
 *
 * Every frame is a 32-byte little-endian header followed by a payload:
 *   off  size  field
 *     0     4  magic "WKVF"
 *     4     1  version (WK_WIRE_VERSION)
 *     5     1  type (wk_frame_type)
 *     6     2  flags (WK_WIRE_FLAG_*; other bits must be 0)
 *     8     4  unit_id: first unit of a UNIT_DATA frame, 0 otherwise
 *    12     4  payload_len (<= WK_WIRE_MAX_PAYLOAD)
 *    16     8  send_time_us: sender's monotonic clock when the frame was handed to the transport
 *    24     4  stream_id: the request this frame belongs to
 *    28     4  crc32c of bytes 0..27 followed by the payload
 * Encoders write into caller buffers; decoders never read past `len` and name the field at fault. */
#ifndef WIKV_NET_WIRE_H
#define WIKV_NET_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define WK_WIRE_MAGIC "WKVF"
#define WK_WIRE_VERSION 2
#define WK_WIRE_HEADER_BYTES 32
#define WK_WIRE_MAX_PAYLOAD (64u << 20) /* 64 MiB: a batch of units, never a whole KV cache */
#define WK_WIRE_MAX_LEVELS 16
#define WK_WIRE_FLAG_LAST_OF_LEVEL 0x1u /* UNIT_DATA: no more units of this level follow */
#define WK_WIRE_FLAGS_KNOWN 0x1u

typedef enum {
    WK_FRAME_REQUEST = 1,     /* device -> server: start streaming a context for a task under a policy */
    WK_FRAME_STREAM_INFO = 2, /* server -> device: units and bytes per level that will follow */
    WK_FRAME_UNIT_DATA = 3,   /* server -> device: encoded units of one level */
    WK_FRAME_MORE = 4,        /* device -> server: send (more) of level k, up to a unit/byte budget */
    WK_FRAME_STOP = 5,        /* device -> server: enough, stop sending */
    WK_FRAME_END = 6,         /* server -> device: end of stream */
    WK_FRAME_ERROR = 7,       /* either way: the request failed */
    WK_FRAME_PROGRESS = 8     /* device -> server: how far the device got (version 2) */
} wk_frame_type;

typedef struct {
    uint8_t version, type;
    uint16_t flags;
    uint32_t unit_id;
    uint32_t payload_len;
    uint64_t send_time_us;
    uint32_t stream_id;
    uint32_t crc;
} wk_wire_header;

/* Strings are sent as u16 length + bytes (no NUL inside); these are the per-field limits. */
typedef struct {
    char task_id[256];
    char context_id[256];
    char policy[64];
    char params[2048]; /* "key=value;key=value" */
} wk_wire_request;

typedef struct {
    uint32_t n_units;
    uint8_t n_levels;                         /* 1..WK_WIRE_MAX_LEVELS */
    uint64_t level_bytes[WK_WIRE_MAX_LEVELS]; /* [n_levels] payload bytes of each level */
} wk_wire_stream_info;

typedef struct {
    uint8_t level;
    uint32_t n_units;    /* units in this frame, starting at header.unit_id */
    const uint8_t *data; /* [data_len] encoded units; decode points into the frame buffer */
    size_t data_len;
} wk_wire_unit_data;

typedef struct {
    uint8_t level;
    uint32_t max_units; /* 0: no unit limit */
    uint64_t max_bytes; /* 0: no byte limit */
} wk_wire_more;

typedef struct {
    uint32_t units_sent;
    uint64_t bytes_sent;
} wk_wire_end;

typedef struct {
    uint32_t tokens_prefilling; /* context tokens the device computed or is computing itself */
    uint32_t tokens_emitted;    /* output tokens it produced */
} wk_wire_progress;

typedef struct {
    int32_t code; /* a WK_E* code */
    char message[512];
} wk_wire_error;

typedef struct {
    wk_wire_header h; /* encode: type, flags, unit_id, send_time_us, stream_id are used */
    union {
        wk_wire_request request;
        wk_wire_stream_info info;
        wk_wire_unit_data unit;
        wk_wire_more more;
        wk_wire_end end;
        wk_wire_error error;
        wk_wire_progress progress;
    } u;
} wk_wire_msg;

const char *wk_wire_type_name(int type);

/* Any payload: writes header + payload into buf[cap]; *len = bytes written. */
int wk_wire_encode_frame(const wk_wire_header *h, const void *payload, size_t payload_len, uint8_t *buf, size_t cap,
                         size_t *len, wk_err *err);
/* Checks and decodes the 32-byte header in buf[len] (magic, version, type, flags, payload_len); does
 * not check the CRC. After it, the whole frame is WK_WIRE_HEADER_BYTES + h->payload_len bytes. */
int wk_wire_decode_header(const uint8_t *buf, size_t len, wk_wire_header *h, wk_err *err);
/* Checks one whole frame at buf[len] (header, length, CRC); *payload points into buf; *frame_len is
 * the frame's size (buf may hold more after it). */
int wk_wire_decode_frame(const uint8_t *buf, size_t len, wk_wire_header *h, const uint8_t **payload,
                         size_t *frame_len, wk_err *err);

/* Typed messages. Encode: bytes needed is at most WK_WIRE_HEADER_BYTES + payload. */
int wk_wire_encode(const wk_wire_msg *m, uint8_t *buf, size_t cap, size_t *len, wk_err *err);
/* Decodes a frame and its payload by type; unit.data points into buf. */
int wk_wire_decode(const uint8_t *buf, size_t len, wk_wire_msg *m, size_t *frame_len, wk_err *err);

#endif
