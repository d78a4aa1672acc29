/* Writes the seed corpus of the wire fuzz target: one valid frame of each type (and a three-frame
 * stream), remade whenever the protocol version changes:
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -I. tests/fuzz/gen_wire_corpus.c core/err.c core/crc32c.c net/wire.c -o /tmp/g
 *   /tmp/g tests/fuzz/corpus/wire */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/wire.h"

static size_t encode(const wk_wire_msg *m, uint8_t *buf, size_t cap) {
    size_t len;
    wk_err err;
    if (wk_wire_encode(m, buf, cap, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return len;
}

static void put(const char *dir, const char *name, const uint8_t *buf, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void put_msg(const char *dir, const char *name, const wk_wire_msg *m) {
    uint8_t buf[4096];
    put(dir, name, buf, encode(m, buf, sizeof buf));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_wire_corpus DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    static const uint8_t data[48] = {7, 1, 2, 3, 4, 5};
    wk_wire_msg m = {.h = {.type = WK_FRAME_REQUEST, .stream_id = 1}};
    strcpy(m.u.request.task_id, "passkey");
    strcpy(m.u.request.context_id, "seed=1;context=1024;out=8");
    strcpy(m.u.request.policy, "wikv");
    strcpy(m.u.request.params, "batch=512;levels=3");
    put_msg(dir, "request", &m);
    m = (wk_wire_msg){.h = {.type = WK_FRAME_STREAM_INFO, .stream_id = 1}, .u.info = {.n_units = 12, .n_levels = 2}};
    m.u.info.level_bytes[0] = 4096, m.u.info.level_bytes[1] = 9000;
    put_msg(dir, "stream_info", &m);
    m = (wk_wire_msg){.h = {.type = WK_FRAME_UNIT_DATA, .unit_id = 3, .stream_id = 1, .flags = WK_WIRE_FLAG_LAST_OF_LEVEL}};
    m.u.unit = (wk_wire_unit_data){.level = 1, .n_units = 1, .data = data, .data_len = sizeof data};
    put_msg(dir, "unit_data", &m);
    put_msg(dir, "more", &(wk_wire_msg){.h = {.type = WK_FRAME_MORE}, .u.more = {.level = 1, .max_units = 64}});
    put_msg(dir, "stop", &(wk_wire_msg){.h = {.type = WK_FRAME_STOP}});
    put_msg(dir, "end", &(wk_wire_msg){.h = {.type = WK_FRAME_END}, .u.end = {.units_sent = 12, .bytes_sent = 13096}});
    m = (wk_wire_msg){.h = {.type = WK_FRAME_ERROR}, .u.error = {.code = -3}};
    strcpy(m.u.error.message, "no such context");
    put_msg(dir, "error", &m);
    put_msg(dir, "progress",
            &(wk_wire_msg){.h = {.type = WK_FRAME_PROGRESS}, .u.progress = {.tokens_prefilling = 1024, .tokens_emitted = 0}});
    /* a stream: STREAM_INFO, UNIT_DATA, END back to back, as a receiver reads them */
    uint8_t buf[3 * 4096];
    size_t len = 0;
    m = (wk_wire_msg){.h = {.type = WK_FRAME_STREAM_INFO}, .u.info = {.n_units = 1, .n_levels = 1}};
    m.u.info.level_bytes[0] = sizeof data;
    len += encode(&m, buf + len, sizeof buf - len);
    m = (wk_wire_msg){.h = {.type = WK_FRAME_UNIT_DATA}, .u.unit = {.level = 0, .n_units = 1, .data = data, .data_len = sizeof data}};
    len += encode(&m, buf + len, sizeof buf - len);
    m = (wk_wire_msg){.h = {.type = WK_FRAME_END}, .u.end = {.units_sent = 1, .bytes_sent = sizeof data}};
    len += encode(&m, buf + len, sizeof buf - len);
    put(dir, "stream3", buf, len);
    return 0;
}
