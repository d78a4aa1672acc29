/* Device profiles: parsing of the key = value files and the roofline time model. */
#include "models/device.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key;
    size_t offset;
    double scale; /* file unit -> SI */
} profile_field;

static const profile_field fields[] = {
    {"peak_fp16_tflops", offsetof(wk_device, peak_fp16_flops), 1e12},
    {"mem_bw_gbps", offsetof(wk_device, mem_bw_Bps), 1e9},
    {"prefill_efficiency", offsetof(wk_device, prefill_efficiency), 1},
    {"decode_efficiency", offsetof(wk_device, decode_efficiency), 1},
    {"kv_decode_gbps", offsetof(wk_device, kv_decode_Bps), 1e9},
    {"h2d_gbps", offsetof(wk_device, h2d_Bps), 1e9},
    {"step_overhead_ms", offsetof(wk_device, step_overhead_s), 1e-3},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static int parse_number(const char *path, int line_no, const char *key, const char *val, double *out, wk_err *err) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (end == val || *end || !isfinite(v) || v < 0)
        return wk_err_set(err, WK_EFORMAT, "%s:%d: %s: \"%s\" is not a non-negative number", path, line_no, key, val);
    *out = v;
    return 0;
}

/* The optional keys: attention_efficiency, kv_decode_gbps.POLICY. 1: not one of them. */
static int parse_optional(const char *key, const char *val, const char *path, int line_no, wk_device *dev, wk_err *err) {
    double v = 0;
    if (strcmp(key, "attention_efficiency") == 0) {
        int rc = parse_number(path, line_no, key, val, &v, err);
        if (!rc && !(v > 0 && v <= 1))
            rc = wk_err_set(err, WK_EFORMAT, "%s:%d: attention_efficiency must be in (0, 1]", path, line_no);
        if (!rc) dev->attention_efficiency = v;
        return rc;
    }
    if (strncmp(key, "kv_decode_gbps.", 15) == 0) {
        int rc = parse_number(path, line_no, key, val, &v, err);
        if (!rc && !(v > 0)) rc = wk_err_set(err, WK_EFORMAT, "%s:%d: %s must be > 0", path, line_no, key);
        if (!rc && (!key[15] || strlen(key + 15) >= sizeof dev->kv_rates[0].policy))
            rc = wk_err_set(err, WK_EFORMAT, "%s:%d: %s: bad policy name", path, line_no, key);
        wk_err e2;
        if (!rc && wk_device_set_kv_rate(dev, key + 15, v * 1e9, &e2))
            rc = wk_err_set(err, WK_EFORMAT, "%s:%d: more than %d kv_decode_gbps.POLICY keys", path, line_no,
                            WK_DEVICE_MAX_KV_RATES);
        return rc;
    }
    return 1;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static int parse_line(char *line, const char *path, int line_no, wk_device *dev, unsigned *seen, wk_err *err) {
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *s = trim(line);
    if (!*s) return 0;
    char *eq = strchr(s, '=');
    if (!eq) return wk_err_set(err, WK_EFORMAT, "%s:%d: expected key = value", path, line_no);
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    if (strcmp(key, "name") == 0) {
        snprintf(dev->name, sizeof dev->name, "%s", val);
        return 0;
    }
    int opt = parse_optional(key, val, path, line_no, dev, err);
    if (opt <= 0) return opt;
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (strcmp(key, fields[i].key) != 0) continue;
        double v = 0;
        int rc = parse_number(path, line_no, key, val, &v, err);
        if (rc) return rc;
        *(double *)((char *)dev + fields[i].offset) = v * fields[i].scale;
        *seen |= 1u << i;
        return 0;
    }
    return wk_err_set(err, WK_EFORMAT, "%s:%d: unknown key \"%s\"", path, line_no, key);
}

int wk_device_load(const char *path, wk_device *dev, wk_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return wk_err_set(err, WK_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    memset(dev, 0, sizeof *dev);
    char line[1024];
    int line_no = 0, rc = 0;
    unsigned seen = 0;
    while (!rc && fgets(line, sizeof line, f)) rc = parse_line(line, path, ++line_no, dev, &seen, err);
    fclose(f);
    if (rc) return rc;
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!(seen & (1u << i))) return wk_err_set(err, WK_EFORMAT, "%s: missing key \"%s\"", path, fields[i].key);
    if (!(dev->peak_fp16_flops > 0 && dev->mem_bw_Bps > 0 && dev->kv_decode_Bps > 0) ||
        !(dev->prefill_efficiency > 0 && dev->prefill_efficiency <= 1) ||
        !(dev->decode_efficiency > 0 && dev->decode_efficiency <= 1))
        return wk_err_set(err, WK_EFORMAT, "%s: peak, bandwidth and kv decode must be > 0, efficiencies in (0, 1]", path);
    if (!dev->name[0]) return wk_err_set(err, WK_EFORMAT, "%s: missing key \"name\"", path);
    return 0;
}

int wk_device_find(const char *name, wk_device *dev, wk_err *err) {
    if (strchr(name, '/')) return wk_device_load(name, dev, err);
    char path[4096];
    snprintf(path, sizeof path, "%s/models/devices/%s.profile", wk_data_dir(), name);
    FILE *f = fopen(path, "r");
    if (!f) {
        char names[1024];
        wk_device_list(names, sizeof names);
        return wk_err_set(err, WK_ENOTFOUND, "unknown device \"%s\" (bundled: %s)", name, names);
    }
    fclose(f);
    return wk_device_load(path, dev, err);
}

void wk_device_list(char *buf, size_t cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/devices", wk_data_dir());
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 8 && strcmp(e->d_name + len - 8, ".profile") == 0)
            used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s%.*s", used ? ", " : "", (int)(len - 8),
                                     e->d_name);
    }
    closedir(d);
}

/* flops: all FLOPs of the step; attn: the attention FLOPs among them (at attention_efficiency when the
 * profile has it) */
static double roofline_s(const wk_device *d, double flops, double attn, double compute_eff, double bytes,
                         double mem_eff) {
    double compute = d->attention_efficiency > 0
                         ? (flops - attn) / (d->peak_fp16_flops * compute_eff) +
                               attn / (d->peak_fp16_flops * d->attention_efficiency)
                         : flops / (d->peak_fp16_flops * compute_eff);
    double memory = bytes / (d->mem_bw_Bps * mem_eff);
    return (compute > memory ? compute : memory) + d->step_overhead_s; /* fmax without the call: both are >= 0 */
}

/* Attention FLOPs of `chunk` queries over `past` earlier tokens plus causal attention inside the
 * chunk: QK^T and AV, 2 FLOPs per multiply-add, all heads, all layers. */
static double attention_per_key(const wk_model_spec *m) { return 4.0 * m->n_layers * m->n_heads * (double)m->head_dim; }

/* (query, key) pairs of `chunk` queries over `past` earlier tokens and causally inside the chunk */
static double keys_seen(double chunk, double past) { return chunk * past + chunk * (chunk + 1) / 2; }

static double attention_flops(const wk_model_spec *m, double chunk, double past) {
    return attention_per_key(m) * keys_seen(chunk, past);
}

wk_prefill_cost wk_prefill_cost_of(const wk_model_spec *m) {
    wk_prefill_cost c = {.layer_params = m->n_layers * wk_model_params_per_layer(m),
                         .head_params = (double)m->vocab * m->hidden,
                         .kv_bytes_per_token = wk_model_kv_bytes_per_token(m, 16),
                         .attention_per_key = attention_per_key(m)};
    return c;
}

double wk_device_prefill_step_s(const wk_device *d, const wk_prefill_cost *c, int chunk, int past) {
    double attn = c->attention_per_key * keys_seen(chunk, past);
    double flops = 2.0 * c->layer_params * chunk + attn + 2.0 * c->head_params;
    double bytes = 2.0 * (c->layer_params + c->head_params) + c->kv_bytes_per_token * ((double)past + chunk);
    return roofline_s(d, flops, attn, d->prefill_efficiency, bytes, d->decode_efficiency);
}

double wk_device_prefill_s(const wk_device *d, const wk_model_spec *m, int chunk, int past) {
    wk_prefill_cost c = wk_prefill_cost_of(m);
    return wk_device_prefill_step_s(d, &c, chunk, past);
}

double wk_device_decode_s(const wk_device *d, const wk_model_spec *m, int context, double kv_bytes_per_token) {
    double params = m->n_layers * wk_model_params_per_layer(m) + (double)m->vocab * m->hidden;
    double attn = attention_flops(m, 1, context);
    double flops = 2.0 * params + attn;
    double bytes = 2.0 * params + kv_bytes_per_token * ((double)context + 1);
    /* decode GEMVs are bandwidth bound: their FLOPs run at the decode (not the GEMM) efficiency */
    return roofline_s(d, flops, 0, d->decode_efficiency, bytes, d->decode_efficiency);
}

double wk_device_kv_decode_s(const wk_device *d, double out_bytes) { return out_bytes / d->kv_decode_Bps; }

double wk_device_kv_decode_policy_s(const wk_device *d, const char *policy, double out_bytes, double values) {
    for (int i = 0; policy && i < d->n_kv_rates; i++)
        if (strcmp(d->kv_rates[i].policy, policy) == 0) return 2.0 * values / d->kv_rates[i].Bps;
    return wk_device_kv_decode_s(d, out_bytes);
}

int wk_device_set_kv_rate(wk_device *d, const char *policy, double Bps, wk_err *err) {
    int i = 0;
    while (i < d->n_kv_rates && strcmp(d->kv_rates[i].policy, policy) != 0) i++;
    if (i == WK_DEVICE_MAX_KV_RATES) return wk_err_set(err, WK_EINVAL, "device %s: too many kv decode rates", d->name);
    snprintf(d->kv_rates[i].policy, sizeof d->kv_rates[i].policy, "%s", policy);
    d->kv_rates[i].Bps = Bps;
    if (i == d->n_kv_rates) d->n_kv_rates++;
    return 0;
}

double wk_device_h2d_s(const wk_device *d, double bytes) { return d->h2d_Bps > 0 ? bytes / d->h2d_Bps : 0; }
