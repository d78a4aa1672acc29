/* Encoded units of one context kept for reuse, as an edge server stores its KV encoded ahead of time
 * (CacheGen keeps every quality version of each chunk; WiKV its stream): a thread-safe map from a unit's
 * identity (the codec and every field that decides its bytes, including its vector ids) to its payload,
 * holding at most max_bytes of payloads (a unit that does not fit is not kept). */
#ifndef WIKV_EXEC_UNIT_STORE_H
#define WIKV_EXEC_UNIT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "exec/stream.h"
#include "kv/unit.h"

typedef struct wk_unit_store wk_unit_store;

int wk_unit_store_new(size_t max_bytes, wk_unit_store **out, wk_err *err);
void wk_unit_store_free(wk_unit_store *s);

/* 1 and a malloc'd copy of the payload in *data, *len when the unit is stored; 0 when not (or no memory
 * for the copy: the caller encodes it). */
int wk_unit_store_get(wk_unit_store *s, const wk_stream_codec *c, const wk_unit *u, uint8_t **data, size_t *len);
/* Keeps a copy of the unit's payload unless it is stored already or would pass max_bytes. */
void wk_unit_store_put(wk_unit_store *s, const wk_stream_codec *c, const wk_unit *u, const uint8_t *data, size_t len);
/* Payload bytes and units held. */
void wk_unit_store_usage(wk_unit_store *s, size_t *bytes, size_t *units);

#endif
