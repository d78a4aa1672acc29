/* Command-line helpers. */
#include "cli/cli_util.h"

#include "net/trace_list.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wk_strlist_add(wk_strlist *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items) return -1;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n] = strdup(s);
    if (!l->items[l->n]) return -1;
    l->n++;
    return 0;
}

void wk_strlist_free(wk_strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

int wk_strlist_add_csv(wk_strlist *l, const char *csv) {
    char *copy = strdup(csv), *save = NULL;
    if (!copy) return -1;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save))
        if (*tok) rc = wk_strlist_add(l, tok);
    free(copy);
    return rc;
}

int wk_strlist_add_policies(wk_strlist *l, const char *csv) {
    char *copy = strdup(csv), *save = NULL;
    if (!copy) return -1;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        if (!*tok) continue;
        if (strchr(tok, '=') && !strchr(tok, ':') && l->n > 0) { /* another parameter of the last policy */
            char *prev = l->items[l->n - 1];
            size_t len = strlen(prev) + strlen(tok) + 2;
            char *joined = malloc(len);
            if (!joined) { rc = -1; break; }
            snprintf(joined, len, "%s,%s", prev, tok);
            free(prev);
            l->items[l->n - 1] = joined;
        } else {
            rc = wk_strlist_add(l, tok);
        }
    }
    free(copy);
    return rc;
}

int wk_strlist_add_traces(wk_strlist *l, const char *path) {
    char **paths = NULL;
    size_t n = 0;
    wk_err err = {0};
    int rc = wk_trace_list_expand(path, &paths, &n, &err);
    if (rc) fprintf(stderr, "wikv: %s\n", err.msg);
    for (size_t i = 0; i < n; i++) {
        if (!rc) rc = wk_strlist_add(l, paths[i]);
        free(paths[i]);
    }
    free(paths);
    return rc ? -1 : 0;
}

void wk_cli_command_line(int argc, char **argv, const char *prefix, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "%s", prefix);
    for (int i = 0; i < argc && used < cap; i++) used += (size_t)snprintf(buf + used, cap - used, " %s", argv[i]);
}

int wk_parse_int_list(const char *csv, int *out, int max) {
    int n = 0;
    const char *p = csv;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 10000000 || errno || (*end && *end != ',') || n == max) return -1;
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n > 0 ? n : -1;
}
