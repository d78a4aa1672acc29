/* Encoded-unit store: open hashing on a 64-bit key (FNV-1a over the codec and the unit's identity fields
 * and vector ids); the identity fields are compared too, so a key collision is a miss, never a wrong
 * payload (the vector list is compared through its own 64-bit hash and length). */
#include "exec/unit_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct unit_id {
    int32_t codec[4]; /* kind, kivi bits, group, residual */
    int32_t layer_first, layer_count, token_first, token_count, kv_head, level, kind, n_vectors;
    uint64_t vectors_hash;
} unit_id;

typedef struct slot {
    uint64_t key;
    unit_id id;
    uint8_t *data; /* NULL: empty */
    size_t len;
} slot;

struct wk_unit_store {
    pthread_mutex_t mu;
    slot *slots; /* [cap], cap a power of two, at most half full */
    size_t cap, n, bytes, max_bytes;
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static unit_id id_of(const wk_stream_codec *c, const wk_unit *u) {
    unit_id id;
    memset(&id, 0, sizeof id); /* padding too: the key hashes the whole struct */
    id.codec[0] = (int32_t)c->kind;
    id.codec[1] = c->kivi_bits;
    id.codec[2] = c->kivi_group;
    id.codec[3] = c->kivi_residual;
    id.layer_first = u->layer_first;
    id.layer_count = u->layer_count;
    id.token_first = u->token_first;
    id.token_count = u->token_count;
    id.kv_head = u->kv_head;
    id.level = u->level;
    id.kind = u->kind;
    id.n_vectors = u->vectors ? u->n_vectors : 0;
    id.vectors_hash = u->vectors ? fnv1a(14695981039346656037ull, u->vectors, (size_t)u->n_vectors * sizeof *u->vectors) : 0;
    return id;
}

/* The slot holding id, or the empty slot where it would go. */
static slot *find(wk_unit_store *s, uint64_t key, const unit_id *id) {
    size_t i = (size_t)key & (s->cap - 1);
    while (s->slots[i].data && !(s->slots[i].key == key && memcmp(&s->slots[i].id, id, sizeof *id) == 0))
        i = (i + 1) & (s->cap - 1);
    return &s->slots[i];
}

static int grow(wk_unit_store *s) {
    size_t cap = s->cap * 2;
    slot *old = s->slots, *fresh = calloc(cap, sizeof *fresh);
    if (!fresh) return -1;
    size_t old_cap = s->cap;
    s->slots = fresh;
    s->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].data) *find(s, old[i].key, &old[i].id) = old[i];
    free(old);
    return 0;
}

int wk_unit_store_new(size_t max_bytes, wk_unit_store **out, wk_err *err) {
    wk_unit_store *s = calloc(1, sizeof *s);
    if (s) s->slots = calloc(64, sizeof *s->slots);
    if (!s || !s->slots) {
        free(s);
        return wk_err_set(err, WK_ENOMEM, "unit store: out of memory");
    }
    s->cap = 64;
    s->max_bytes = max_bytes;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return 0;
}

void wk_unit_store_free(wk_unit_store *s) {
    if (!s) return;
    for (size_t i = 0; i < s->cap; i++) free(s->slots[i].data);
    free(s->slots);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int wk_unit_store_get(wk_unit_store *s, const wk_stream_codec *c, const wk_unit *u, uint8_t **data, size_t *len) {
    unit_id id = id_of(c, u);
    uint64_t key = fnv1a(14695981039346656037ull, &id, sizeof id);
    pthread_mutex_lock(&s->mu);
    const slot *e = find(s, key, &id);
    uint8_t *copy = e->data ? malloc(e->len ? e->len : 1) : NULL;
    if (copy) {
        memcpy(copy, e->data, e->len);
        *data = copy;
        *len = e->len;
    }
    pthread_mutex_unlock(&s->mu);
    return copy != NULL;
}

void wk_unit_store_put(wk_unit_store *s, const wk_stream_codec *c, const wk_unit *u, const uint8_t *data, size_t len) {
    unit_id id = id_of(c, u);
    uint64_t key = fnv1a(14695981039346656037ull, &id, sizeof id);
    pthread_mutex_lock(&s->mu);
    if (s->bytes + len <= s->max_bytes && ((s->n + 1) * 2 <= s->cap || grow(s) == 0)) {
        slot *e = find(s, key, &id);
        uint8_t *copy = e->data ? NULL : malloc(len ? len : 1);
        if (copy) {
            memcpy(copy, data, len);
            *e = (slot){key, id, copy, len};
            s->n++;
            s->bytes += len;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void wk_unit_store_usage(wk_unit_store *s, size_t *bytes, size_t *units) {
    pthread_mutex_lock(&s->mu);
    *bytes = s->bytes;
    *units = s->n;
    pthread_mutex_unlock(&s->mu);
}
