/* Recursive-descent JSON parser. Depth is bounded so hostile input cannot exhaust the stack. */
#include "core/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 256

typedef struct {
    const char *text;
    size_t len, pos;
    const char *what;
    wk_err *err;
} json_parser;

static int json_fail(json_parser *p, const char *msg) {
    size_t line = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++)
        if (p->text[i] == '\n') line++;
    return wk_err_set(p->err, WK_EFORMAT, "%s: line %zu, offset %zu: %s", p->what, line, p->pos, msg);
}

static void skip_space(json_parser *p) {
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int parse_value(json_parser *p, wk_json *out, int depth);

static int hex4(json_parser *p, unsigned *out) {
    if (p->pos + 4 > p->len) return json_fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return json_fail(p, "bad hex digit in \\u escape");
    }
    p->pos += 4;
    *out = v;
    return 0;
}

static size_t utf8_put(unsigned cp, char *dst) {
    if (cp < 0x80) { dst[0] = (char)cp; return 1; }
    if (cp < 0x800) { dst[0] = (char)(0xC0 | (cp >> 6)); dst[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12)); dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18)); dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); dst[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* Parses a string literal at p->pos (which is on the opening quote) into a fresh buffer. */
static int parse_string(json_parser *p, char **out, size_t *out_len) {
    p->pos++; /* opening quote */
    size_t start = p->pos;
    /* Escapes only shrink text (\uXXXX is 6 bytes, at most 4 in UTF-8; a pair is 12 -> 4). */
    size_t end = start;
    while (end < p->len && p->text[end] != '"') end += (p->text[end] == '\\') ? 2 : 1;
    if (end >= p->len) return json_fail(p, "unterminated string");
    char *buf = malloc(end - start + 1);
    if (!buf) return wk_err_set(p->err, WK_ENOMEM, "%s: out of memory", p->what);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c < 0x20) { free(buf); return json_fail(p, "control character in string"); }
        if (c != '\\') { buf[n++] = (char)c; p->pos++; continue; }
        p->pos++;
        char e = p->text[p->pos++];
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p, &cp)) { free(buf); return p->err ? p->err->code : WK_EFORMAT; }
            if (cp >= 0xD800 && cp <= 0xDBFF && p->pos + 6 <= end && p->text[p->pos] == '\\' &&
                p->text[p->pos + 1] == 'u') {
                size_t save = p->pos;
                p->pos += 2;
                unsigned lo;
                if (hex4(p, &lo)) { free(buf); return p->err ? p->err->code : WK_EFORMAT; }
                if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else p->pos = save;
            }
            n += utf8_put(cp, buf + n);
            break;
        }
        default: free(buf); p->pos--; return json_fail(p, "bad escape in string");
        }
    }
    if (p->pos != end) { free(buf); return json_fail(p, "bad escape at end of string"); }
    p->pos = end + 1;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static int parse_number(json_parser *p, wk_json *out) {
    size_t start = p->pos;
    if (p->pos < p->len && p->text[p->pos] == '-') p->pos++;
    while (p->pos < p->len && strchr("0123456789.eE+-", p->text[p->pos])) p->pos++;
    size_t n = p->pos - start;
    if (n == 0 || n > 63) { p->pos = start; return json_fail(p, "bad number"); }
    char tmp[64];
    memcpy(tmp, p->text + start, n);
    tmp[n] = '\0';
    char *endp;
    errno = 0;
    double v = strtod(tmp, &endp);
    if (*endp != '\0' || !isfinite(v)) { p->pos = start; return json_fail(p, "bad number"); }
    out->type = WK_JSON_NUMBER;
    out->number = v;
    return 0;
}

static int grow(json_parser *p, wk_json *node, size_t *cap, int with_keys) {
    if (node->count < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    wk_json *items = realloc(node->items, ncap * sizeof *items);
    if (!items) return wk_err_set(p->err, WK_ENOMEM, "%s: out of memory", p->what);
    node->items = items;
    if (with_keys) {
        char **keys = realloc(node->keys, ncap * sizeof *keys);
        if (!keys) return wk_err_set(p->err, WK_ENOMEM, "%s: out of memory", p->what);
        node->keys = keys;
    }
    *cap = ncap;
    return 0;
}

static int parse_array(json_parser *p, wk_json *out, int depth) {
    out->type = WK_JSON_ARRAY;
    p->pos++;
    size_t cap = 0;
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == ']') { p->pos++; return 0; }
    for (;;) {
        int rc = grow(p, out, &cap, 0);
        if (rc) return rc;
        memset(&out->items[out->count], 0, sizeof out->items[0]);
        rc = parse_value(p, &out->items[out->count], depth + 1);
        out->count++;
        if (rc) return rc;
        skip_space(p);
        if (p->pos >= p->len) return json_fail(p, "unterminated array");
        char c = p->text[p->pos++];
        if (c == ']') return 0;
        if (c != ',') { p->pos--; return json_fail(p, "expected ',' or ']' in array"); }
    }
}

static int parse_object(json_parser *p, wk_json *out, int depth) {
    out->type = WK_JSON_OBJECT;
    p->pos++;
    size_t cap = 0;
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == '}') { p->pos++; return 0; }
    for (;;) {
        skip_space(p);
        if (p->pos >= p->len || p->text[p->pos] != '"') return json_fail(p, "expected string key in object");
        int rc = grow(p, out, &cap, 1);
        if (rc) return rc;
        char *key;
        size_t key_len;
        rc = parse_string(p, &key, &key_len);
        if (rc) return rc;
        out->keys[out->count] = key;
        memset(&out->items[out->count], 0, sizeof out->items[0]);
        out->count++;
        skip_space(p);
        if (p->pos >= p->len || p->text[p->pos] != ':') return json_fail(p, "expected ':' after key");
        p->pos++;
        rc = parse_value(p, &out->items[out->count - 1], depth + 1);
        if (rc) return rc;
        skip_space(p);
        if (p->pos >= p->len) return json_fail(p, "unterminated object");
        char c = p->text[p->pos++];
        if (c == '}') return 0;
        if (c != ',') { p->pos--; return json_fail(p, "expected ',' or '}' in object"); }
    }
}

static int match_word(json_parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->pos + n > p->len || memcmp(p->text + p->pos, word, n) != 0) return json_fail(p, "unexpected token");
    p->pos += n;
    return 0;
}

static int parse_value(json_parser *p, wk_json *out, int depth) {
    if (depth > JSON_MAX_DEPTH) return json_fail(p, "nesting too deep");
    skip_space(p);
    if (p->pos >= p->len) return json_fail(p, "unexpected end of input");
    char c = p->text[p->pos];
    switch (c) {
    case '{': return parse_object(p, out, depth);
    case '[': return parse_array(p, out, depth);
    case '"': out->type = WK_JSON_STRING; return parse_string(p, &out->string, &out->string_len);
    case 't': out->type = WK_JSON_BOOL; out->number = 1; return match_word(p, "true");
    case 'f': out->type = WK_JSON_BOOL; out->number = 0; return match_word(p, "false");
    case 'n': out->type = WK_JSON_NULL; return match_word(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, out);
        return json_fail(p, "unexpected character");
    }
}

int wk_json_parse(const char *text, size_t len, const char *what, wk_json *out, wk_err *err) {
    json_parser p = {text, len, 0, what ? what : "json", err};
    memset(out, 0, sizeof *out);
    int rc = parse_value(&p, out, 0);
    if (!rc) {
        skip_space(&p);
        if (p.pos != p.len) rc = json_fail(&p, "trailing characters after value");
    }
    if (rc) wk_json_free(out);
    return rc;
}

int wk_json_parse_file(const char *path, wk_json *out, wk_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return wk_err_set(err, WK_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return wk_err_set(err, WK_EIO, "%s: cannot seek", path); }
    long size = ftell(f);
    rewind(f);
    if (size < 0) { fclose(f); return wk_err_set(err, WK_EIO, "%s: cannot size", path); }
    char *buf = malloc((size_t)size + 1);
    if (!buf) { fclose(f); return wk_err_set(err, WK_ENOMEM, "%s: out of memory", path); }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) { free(buf); return wk_err_set(err, WK_EIO, "%s: short read", path); }
    int rc = wk_json_parse(buf, got, path, out, err);
    free(buf);
    return rc;
}

void wk_json_free(wk_json *node) {
    if (!node) return;
    for (size_t i = 0; i < node->count; i++) {
        if (node->keys) free(node->keys[i]);
        wk_json_free(&node->items[i]);
    }
    free(node->keys);
    free(node->items);
    free(node->string);
    memset(node, 0, sizeof *node);
}

const wk_json *wk_json_get(const wk_json *obj, const char *key) {
    if (!obj || obj->type != WK_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const wk_json *wk_json_at(const wk_json *arr, size_t i) {
    if (!arr || (arr->type != WK_JSON_ARRAY && arr->type != WK_JSON_OBJECT) || i >= arr->count) return NULL;
    return &arr->items[i];
}

int wk_json_get_number(const wk_json *obj, const char *key, double fallback, double *out, wk_err *err) {
    const wk_json *v = wk_json_get(obj, key);
    if (!v || v->type == WK_JSON_NULL) { *out = fallback; return 0; }
    if (v->type != WK_JSON_NUMBER) return wk_err_set(err, WK_EFORMAT, "field \"%s\": expected a number", key);
    *out = v->number;
    return 0;
}

int wk_json_get_int(const wk_json *obj, const char *key, long long fallback, long long *out, wk_err *err) {
    double d = 0;
    int rc = wk_json_get_number(obj, key, (double)fallback, &d, err);
    if (rc) return rc;
    if (d != floor(d) || fabs(d) > 9.0e15) return wk_err_set(err, WK_EFORMAT, "field \"%s\": expected an integer", key);
    *out = (long long)d;
    return 0;
}

const char *wk_json_get_string(const wk_json *obj, const char *key) {
    const wk_json *v = wk_json_get(obj, key);
    return (v && v->type == WK_JSON_STRING) ? v->string : NULL;
}

size_t wk_json_escape(const char *s, char *buf, size_t cap) {
    size_t n = 0;
#define PUT(ch) do { if (n + 1 < cap) buf[n] = (ch); n++; } while (0)
    PUT('"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') { PUT('\\'); PUT((char)*c); }
        else if (*c == '\n') { PUT('\\'); PUT('n'); }
        else if (*c == '\t') { PUT('\\'); PUT('t'); }
        else if (*c < 0x20) {
            char tmp[8];
            snprintf(tmp, sizeof tmp, "\\u%04x", *c);
            for (char *t = tmp; *t; t++) PUT(*t);
        } else PUT((char)*c);
    }
    PUT('"');
#undef PUT
    if (cap) buf[n < cap ? n : cap - 1] = '\0';
    return n;
}
