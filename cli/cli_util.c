/* Command-line helpers. */
#include "cli/cli_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static int is_trace_file(const char *name) {
    if (name[0] == '.') return 0;
    const char *ext = strrchr(name, '.');
    if (!ext) return 1; /* Pensieve files have no extension */
    return strcmp(ext, ".csv") == 0 || strcmp(ext, ".down") == 0 || strcmp(ext, ".up") == 0 ||
           strcmp(ext, ".txt") == 0 || strcmp(ext, ".log") == 0 || strcmp(ext, ".trace") == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_manifest(wk_strlist *l, const char *dir, FILE *f) {
    char line[2048];
    int added = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        char *fmt = tab + 1;
        fmt[strcspn(fmt, "\r\n")] = '\0';
        char path[4096];
        if (strncmp(fmt, "csv:", 4) == 0) snprintf(path, sizeof path, "%s/%s#%s", dir, line, fmt + 4);
        else snprintf(path, sizeof path, "%s/%s", dir, line);
        if (wk_strlist_add(l, path)) return -1;
        added++;
    }
    return added;
}

int wk_strlist_add_traces(wk_strlist *l, const char *path) {
    struct stat st;
    char plain[4096];
    snprintf(plain, sizeof plain, "%s", path);
    char *hash = strrchr(plain, '#');
    if (hash) *hash = '\0';
    if (stat(plain, &st) != 0) {
        fprintf(stderr, "%s: %s\n", plain, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return wk_strlist_add(l, path);
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/MANIFEST.tsv", path);
    FILE *f = fopen(manifest, "r");
    if (f) {
        int added = add_manifest(l, path, f);
        fclose(f);
        return added > 0 ? 0 : -1;
    }
    DIR *d = opendir(path);
    if (!d) return -1;
    wk_strlist names = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_trace_file(e->d_name)) wk_strlist_add(&names, e->d_name);
    closedir(d);
    qsort(names.items, names.n, sizeof names.items[0], cmp_str);
    int rc = names.n ? 0 : -1;
    if (rc) fprintf(stderr, "%s: no trace files in this folder\n", path);
    for (size_t i = 0; i < names.n && !rc; i++) {
        char full[4200];
        snprintf(full, sizeof full, "%s/%s", path, names.items[i]);
        rc = wk_strlist_add(l, full);
    }
    wk_strlist_free(&names);
    return rc;
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
