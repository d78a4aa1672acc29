/* Reader of the safetensors format (one file, or shards listed by model.safetensors.index.json).
 * Files are mmapped read-only; every header entry is checked (dtype, shape, offsets inside the file,
 * size = product of shape x dtype size) so a tensor pointer handed out is always in bounds. Errors
 * name the file and the tensor, e.g. "model.safetensors: tensor X: data offsets beyond file end". */
#ifndef WIKV_EXEC_SAFETENSORS_H
#define WIKV_EXEC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    WK_ST_F32 = 0, WK_ST_F16, WK_ST_BF16, WK_ST_F64, WK_ST_I64, WK_ST_I32, WK_ST_I16, WK_ST_I8, WK_ST_U8,
    WK_ST_BOOL, WK_ST_F8_E4M3, WK_ST_F8_E5M2
} wk_st_dtype;

#define WK_ST_MAX_DIMS 8

typedef struct wk_st_tensor {
    char *name;
    wk_st_dtype dtype;
    int ndim;
    int64_t shape[WK_ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data;   /* into the mapping (or caller's buffer), nbytes long, not aligned */
    size_t nbytes;
    int file;              /* index into wk_safetensors.files */
} wk_st_tensor;

typedef struct wk_st_file {
    char *path;
    void *map;             /* NULL when parsed from a caller's buffer */
    size_t size;
} wk_st_file;

typedef struct wk_safetensors {
    wk_st_file *files;
    int n_files;
    wk_st_tensor *tensors; /* [n_tensors], sorted by name for lookup */
    size_t n_tensors;
} wk_safetensors;

/* Parses one safetensors image buf[0..len) that stays owned by the caller (used by tests and fuzzing).
 * `what` names it in errors. */
int wk_st_parse(const uint8_t *buf, size_t len, const char *what, wk_safetensors *st, wk_err *err);
/* Maps and parses one file. */
int wk_st_open_file(const char *path, wk_safetensors *st, wk_err *err);
/* DIR/model.safetensors, or the shards named by DIR/model.safetensors.index.json (each tensor of the
 * weight_map must be in the shard the map names). */
int wk_st_open_dir(const char *dir, wk_safetensors *st, wk_err *err);
void wk_st_close(wk_safetensors *st);

const wk_st_tensor *wk_st_find(const wk_safetensors *st, const char *name);
const char *wk_st_dtype_name(wk_st_dtype d);
size_t wk_st_dtype_size(wk_st_dtype d);
/* Converts a F32/F16/BF16 tensor into out[numel]; other dtypes give WK_EUNSUPPORTED naming the tensor. */
int wk_st_to_f32(const wk_safetensors *st, const wk_st_tensor *t, float *out, wk_err *err);
/* Finds `name`, checks it has exactly the given shape (ndim dims), converts to fp32. */
int wk_st_load_f32(const wk_safetensors *st, const char *name, int ndim, const int64_t *shape, float *out, wk_err *err);

#endif
