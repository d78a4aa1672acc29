/* Expansion of trace arguments into trace files. */
#include "net/trace_list.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int push(char ***list, size_t *n, const char *s, wk_err *err) {
    char **l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l) return wk_err_set(err, WK_ENOMEM, "traces: out of memory");
    *list = l;
    l[*n] = strdup(s);
    if (!l[*n]) return wk_err_set(err, WK_ENOMEM, "traces: out of memory");
    (*n)++;
    return 0;
}

static int is_trace_file(const char *name) {
    if (name[0] == '.') return 0;
    const char *ext = strrchr(name, '.');
    if (!ext) return 1; /* Pensieve files have no extension */
    return strcmp(ext, ".csv") == 0 || strcmp(ext, ".down") == 0 || strcmp(ext, ".up") == 0 ||
           strcmp(ext, ".txt") == 0 || strcmp(ext, ".log") == 0 || strcmp(ext, ".trace") == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_manifest(const char *dir, FILE *f, char ***list, size_t *n, wk_err *err) {
    char line[2048];
    int added = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        char *fmt = tab + 1;
        fmt[strcspn(fmt, "\r\n")] = '\0';
        char path[4096];
        if (strncmp(fmt, "csv:", 4) == 0) snprintf(path, sizeof path, "%s/%s#%s", dir, line, fmt + 4);
        else snprintf(path, sizeof path, "%s/%s", dir, line);
        rc = push(list, n, path, err);
        added++;
    }
    if (!rc && !added) rc = wk_err_set(err, WK_EFORMAT, "%s/MANIFEST.tsv: no entries", dir);
    return rc;
}

static int add_folder(const char *path, char ***list, size_t *n, wk_err *err) {
    DIR *d = opendir(path);
    if (!d) return wk_err_set(err, WK_EIO, "%s: cannot list: %s", path, strerror(errno));
    char **names = NULL;
    size_t count = 0;
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        char full[4200];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (is_trace_file(e->d_name) && stat(full, &st) == 0 && S_ISREG(st.st_mode))
            rc = push(&names, &count, e->d_name, err);
    }
    closedir(d);
    if (!rc && count == 0) rc = wk_err_set(err, WK_ENOTFOUND, "%s: no trace files in this folder", path);
    if (!rc) qsort(names, count, sizeof *names, cmp_str);
    for (size_t i = 0; i < count; i++) {
        if (!rc) {
            char full[4200];
            snprintf(full, sizeof full, "%s/%s", path, names[i]);
            rc = push(list, n, full, err);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int wk_trace_list_expand(const char *path, char ***list, size_t *n, wk_err *err) {
    char plain[4096];
    snprintf(plain, sizeof plain, "%s", path);
    char *hash = strrchr(plain, '#');
    if (hash) *hash = '\0';
    struct stat st;
    if (stat(plain, &st) != 0) return wk_err_set(err, WK_ENOTFOUND, "%s: %s", plain, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return push(list, n, path, err);
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/MANIFEST.tsv", path);
    FILE *f = fopen(manifest, "r");
    if (!f) return add_folder(path, list, n, err);
    int rc = add_manifest(path, f, list, n, err);
    fclose(f);
    return rc;
}
