/* Growable array of units. */
#include "kv/unit.h"

#include <stdlib.h>
#include <string.h>

void wk_plan_init(wk_plan *p) { memset(p, 0, sizeof *p); }

void wk_plan_free(wk_plan *p) {
    free(p->units);
    memset(p, 0, sizeof *p);
}

void wk_plan_clear(wk_plan *p) {
    p->n = 0;
    p->kv_values_total = 0;
    p->importance_total = 0;
    p->token_importance = NULL;
}

int wk_plan_push(wk_plan *p, const wk_unit *u, wk_err *err) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        wk_unit *units = realloc(p->units, cap * sizeof *units);
        if (!units) return wk_err_set(err, WK_ENOMEM, "plan: out of memory (%zu units)", cap);
        p->units = units;
        p->cap = cap;
    }
    p->units[p->n++] = *u;
    return 0;
}

int64_t wk_plan_total_bytes(const wk_plan *p) {
    int64_t total = 0;
    for (size_t i = 0; i < p->n; i++) total += p->units[i].bytes;
    return total;
}
