/* safetensors reader: 8-byte little-endian header length, JSON header, raw data. Each tensor entry is
 * validated before it is handed out; shards are merged into one sorted table. */
#include "exec/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"
#include "core/json.h"

#define ST_MAX_HEADER (256u << 20) /* real headers are KBs to a few MB */

typedef struct {
    const char *name;
    size_t size;
} dtype_info;

static const dtype_info DTYPES[] = {
    [WK_ST_F32] = {"F32", 4},  [WK_ST_F16] = {"F16", 2},     [WK_ST_BF16] = {"BF16", 2},
    [WK_ST_F64] = {"F64", 8},  [WK_ST_I64] = {"I64", 8},     [WK_ST_I32] = {"I32", 4},
    [WK_ST_I16] = {"I16", 2},  [WK_ST_I8] = {"I8", 1},       [WK_ST_U8] = {"U8", 1},
    [WK_ST_BOOL] = {"BOOL", 1}, [WK_ST_F8_E4M3] = {"F8_E4M3", 1}, [WK_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

const char *wk_st_dtype_name(wk_st_dtype d) { return (int)d >= 0 && (int)d < N_DTYPES ? DTYPES[d].name : "?"; }
size_t wk_st_dtype_size(wk_st_dtype d) { return (int)d >= 0 && (int)d < N_DTYPES ? DTYPES[d].size : 0; }

static int parse_dtype(const wk_json *v, wk_st_dtype *out) {
    if (!v || v->type != WK_JSON_STRING) return -1;
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(v->string, DTYPES[i].name) == 0) {
            *out = (wk_st_dtype)i;
            return 0;
        }
    return -1;
}

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static int json_u64(const wk_json *v, uint64_t *out) {
    if (!v || v->type != WK_JSON_NUMBER || !(v->number >= 0) || v->number > 9007199254740992.0) return -1;
    if ((double)(uint64_t)v->number != v->number) return -1;
    *out = (uint64_t)v->number;
    return 0;
}

static int parse_shape(const wk_json *shape, wk_st_tensor *t, const char *what, wk_err *err) {
    if (!shape || shape->type != WK_JSON_ARRAY)
        return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: field shape missing or not an array", what, t->name);
    if (shape->count > WK_ST_MAX_DIMS)
        return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: %zu dimensions (at most %d)", what, t->name, shape->count,
                          WK_ST_MAX_DIMS);
    t->ndim = (int)shape->count;
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t n;
        if (json_u64(&shape->items[d], &n) != 0 || n > (1ull << 40))
            return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: shape[%d] is not a valid size", what, t->name, d);
        if (n != 0 && numel > (1ull << 50) / n)
            return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: shape too large", what, t->name);
        numel *= n;
        t->shape[d] = (int64_t)n;
    }
    t->numel = (int64_t)numel;
    return 0;
}

static int parse_entry(const char *key, const wk_json *v, const uint8_t *data, uint64_t data_len, const char *what,
                       wk_st_tensor *t, wk_err *err) {
    t->name = strdup(key);
    if (!t->name) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
    if (v->type != WK_JSON_OBJECT) return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: entry is not an object", what, key);
    if (parse_dtype(wk_json_get(v, "dtype"), &t->dtype) != 0)
        return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: field dtype missing or unknown", what, key);
    if (parse_shape(wk_json_get(v, "shape"), t, what, err) != 0) return err->code;
    const wk_json *off = wk_json_get(v, "data_offsets");
    uint64_t b, e;
    if (!off || off->type != WK_JSON_ARRAY || off->count != 2 || json_u64(&off->items[0], &b) || json_u64(&off->items[1], &e))
        return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: field data_offsets is not [begin, end]", what, key);
    if (b > e) return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: data offsets reversed (%llu > %llu)", what, key,
                                 (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: data offsets beyond file end (%llu > %llu)", what, key,
                          (unsigned long long)e, (unsigned long long)data_len);
    uint64_t want = (uint64_t)t->numel * wk_st_dtype_size(t->dtype);
    if (e - b != want)
        return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: data size %llu does not match shape x dtype (%llu)", what, key,
                          (unsigned long long)(e - b), (unsigned long long)want);
    t->data = data + b;
    t->nbytes = (size_t)(e - b);
    return 0;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const wk_st_tensor *)a)->name, ((const wk_st_tensor *)b)->name);
}

/* Parses the header of buf and appends its tensors (file index `file`) to st. */
static int parse_into(wk_safetensors *st, int file, const uint8_t *buf, size_t len, const char *what, wk_err *err) {
    if (len < 8) return wk_err_set(err, WK_EFORMAT, "%s: shorter than the 8-byte header length", what);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > len - 8 || hlen > ST_MAX_HEADER)
        return wk_err_set(err, WK_EFORMAT, "%s: header length %llu beyond file end (%zu bytes)", what,
                          (unsigned long long)hlen, len);
    wk_json root;
    if (wk_json_parse((const char *)buf + 8, (size_t)hlen, what, &root, err) != 0) return err->code;
    int rc = 0;
    if (root.type != WK_JSON_OBJECT) {
        rc = wk_err_set(err, WK_EFORMAT, "%s: header is not a JSON object", what);
        goto done;
    }
    wk_st_tensor *grown = realloc(st->tensors, (st->n_tensors + root.count + 1) * sizeof *grown);
    if (!grown) {
        rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
        goto done;
    }
    st->tensors = grown;
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    for (size_t i = 0; i < root.count && rc == 0; i++) {
        if (strcmp(root.keys[i], "__metadata__") == 0) continue;
        wk_st_tensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        t->file = file;
        st->n_tensors++; /* counted before parsing so that close frees a partial entry */
        rc = parse_entry(root.keys[i], &root.items[i], data, data_len, what, t, err);
    }
done:
    wk_json_free(&root);
    return rc;
}

static int finish_table(wk_safetensors *st, const char *what, wk_err *err) {
    if (st->n_tensors > 1) qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_tensor);
    for (size_t i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return wk_err_set(err, WK_EFORMAT, "%s: tensor %s appears twice", what, st->tensors[i].name);
    return 0;
}

static int add_file(wk_safetensors *st, const char *path, void *map, size_t size, wk_err *err) {
    wk_st_file *f = realloc(st->files, (size_t)(st->n_files + 1) * sizeof *f);
    if (!f) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    st->files = f;
    f[st->n_files].path = strdup(path);
    f[st->n_files].map = map;
    f[st->n_files].size = size;
    if (!f[st->n_files].path) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    st->n_files++;
    return 0;
}

int wk_st_parse(const uint8_t *buf, size_t len, const char *what, wk_safetensors *st, wk_err *err) {
    memset(st, 0, sizeof *st);
    int rc = add_file(st, what, NULL, len, err);
    if (!rc) rc = parse_into(st, 0, buf, len, what, err);
    if (!rc) rc = finish_table(st, what, err);
    if (rc) wk_st_close(st);
    return rc;
}

static int map_file(const char *path, void **map, size_t *size, wk_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return wk_err_set(err, errno == ENOENT ? WK_ENOTFOUND : WK_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0) {
        close(fd);
        return wk_err_set(err, WK_EFORMAT, "%s: empty or unreadable file", path);
    }
    *size = (size_t)sb.st_size;
    *map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (*map == MAP_FAILED) {
        *map = NULL;
        return wk_err_set(err, WK_EIO, "%s: mmap failed: %s", path, strerror(errno));
    }
    return 0;
}

/* Maps one more file into st and parses it. */
static int open_more(wk_safetensors *st, const char *path, wk_err *err) {
    void *map = NULL;
    size_t size = 0;
    if (map_file(path, &map, &size, err)) return err->code;
    if (add_file(st, path, map, size, err)) {
        munmap(map, size);
        return err->code;
    }
    const char *base = strrchr(path, '/');
    return parse_into(st, st->n_files - 1, map, size, base ? base + 1 : path, err);
}

int wk_st_open_file(const char *path, wk_safetensors *st, wk_err *err) {
    memset(st, 0, sizeof *st);
    int rc = open_more(st, path, err);
    if (!rc) rc = finish_table(st, path, err);
    if (rc) wk_st_close(st);
    return rc;
}

static int file_index_of(const wk_safetensors *st, const char *path) {
    for (int i = 0; i < st->n_files; i++)
        if (strcmp(st->files[i].path, path) == 0) return i;
    return -1;
}

static int open_index(const char *dir, const char *index_path, wk_safetensors *st, wk_err *err) {
    wk_json root;
    if (wk_json_parse_file(index_path, &root, err)) return err->code;
    int rc = 0;
    const wk_json *map = wk_json_get(&root, "weight_map");
    if (!map || map->type != WK_JSON_OBJECT) {
        rc = wk_err_set(err, WK_EFORMAT, "%s: field weight_map missing or not an object", index_path);
        goto done;
    }
    char path[4096];
    for (size_t i = 0; i < map->count && rc == 0; i++) {
        const wk_json *f = &map->items[i];
        if (f->type != WK_JSON_STRING || strchr(f->string, '/') || f->string_len == 0) {
            rc = wk_err_set(err, WK_EFORMAT, "%s: weight_map.%s: not a plain file name", index_path, map->keys[i]);
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, f->string);
        if (file_index_of(st, path) < 0) rc = open_more(st, path, err);
    }
    if (!rc) rc = finish_table(st, index_path, err);
    for (size_t i = 0; i < map->count && rc == 0; i++) {
        const wk_st_tensor *t = wk_st_find(st, map->keys[i]);
        snprintf(path, sizeof path, "%s/%s", dir, map->items[i].string);
        if (!t || t->file != file_index_of(st, path))
            rc = wk_err_set(err, WK_EFORMAT, "%s: tensor %s: not found in shard %s", index_path, map->keys[i],
                            map->items[i].string);
    }
done:
    wk_json_free(&root);
    return rc;
}

int wk_st_open_dir(const char *dir, wk_safetensors *st, wk_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, R_OK) == 0) return wk_st_open_file(path, st, err);
    memset(st, 0, sizeof *st);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, R_OK) != 0)
        return wk_err_set(err, WK_ENOTFOUND, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    int rc = open_index(dir, path, st, err);
    if (rc) wk_st_close(st);
    return rc;
}

void wk_st_close(wk_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_files; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    free(st->files);
    memset(st, 0, sizeof *st);
}

const wk_st_tensor *wk_st_find(const wk_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->tensors[mid].name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

int wk_st_to_f32(const wk_safetensors *st, const wk_st_tensor *t, float *out, wk_err *err) {
    const char *file = st->n_files > t->file ? st->files[t->file].path : "safetensors";
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case WK_ST_F32:
        memcpy(out, p, (size_t)t->numel * 4);
        return 0;
    case WK_ST_F16:
        for (int64_t i = 0; i < t->numel; i++) out[i] = wk_half_to_float((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return 0;
    case WK_ST_BF16:
        for (int64_t i = 0; i < t->numel; i++) out[i] = wk_bf16_to_float((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return 0;
    default:
        return wk_err_set(err, WK_EUNSUPPORTED, "%s: tensor %s: dtype %s not supported (F32, F16, BF16)", file, t->name,
                          wk_st_dtype_name(t->dtype));
    }
}

int wk_st_load_f32(const wk_safetensors *st, const char *name, int ndim, const int64_t *shape, float *out, wk_err *err) {
    const wk_st_tensor *t = wk_st_find(st, name);
    const char *file = st->n_files > 0 ? st->files[0].path : "safetensors";
    if (!t) return wk_err_set(err, WK_ENOTFOUND, "%s: tensor %s: missing", file, name);
    file = st->files[t->file].path;
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char got[128] = "", want[128] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "", (long long)t->shape[d]);
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)shape[d]);
        return wk_err_set(err, WK_EFORMAT, "%s: tensor %s: shape [%s], expected [%s]", file, name, got, want);
    }
    return wk_st_to_f32(st, t, out, err);
}
