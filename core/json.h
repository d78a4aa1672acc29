/* A small JSON reader (RFC 8259) that builds a tree, for config.json, tokenizer.json, safetensors
 * headers and choice files. Errors name the byte offset and line of the fault. Not for huge files:
 * the whole text is held in memory. */
#ifndef WIKV_CORE_JSON_H
#define WIKV_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum { WK_JSON_NULL, WK_JSON_BOOL, WK_JSON_NUMBER, WK_JSON_STRING, WK_JSON_ARRAY, WK_JSON_OBJECT } wk_json_type;

typedef struct wk_json {
    wk_json_type type;
    double number;        /* NUMBER, BOOL (0/1) */
    char *string;         /* STRING value, NUL-terminated (may contain NUL: see string_len) */
    size_t string_len;
    size_t count;         /* ARRAY/OBJECT: number of children */
    char **keys;          /* OBJECT: key of each child, in file order */
    struct wk_json *items;/* ARRAY/OBJECT: children [count] */
} wk_json;

/* Parses text[0..len). `what` names the source in error messages (a file name). */
int wk_json_parse(const char *text, size_t len, const char *what, wk_json *out, wk_err *err);
int wk_json_parse_file(const char *path, wk_json *out, wk_err *err);
void wk_json_free(wk_json *node);

/* Lookups return NULL when absent or of the wrong container type. */
const wk_json *wk_json_get(const wk_json *obj, const char *key);
const wk_json *wk_json_at(const wk_json *arr, size_t i);
/* Typed getters with a default for absent keys; a present key of the wrong type is an error. */
int wk_json_get_number(const wk_json *obj, const char *key, double fallback, double *out, wk_err *err);
int wk_json_get_int(const wk_json *obj, const char *key, long long fallback, long long *out, wk_err *err);
const char *wk_json_get_string(const wk_json *obj, const char *key);

/* Writes s as a JSON string literal (with quotes) into buf; returns the length needed. */
size_t wk_json_escape(const char *s, char *buf, size_t cap);

#endif
