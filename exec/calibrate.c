/* Calibration: timing runs of the engine, least-squares fits of the roofline's free terms. */
#include "exec/calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/stats.h"

/* Bytes a decode step reads and FLOPs a prefill computes, as models/device.c counts them. */
static double decode_bytes(const wk_model_spec *m, int context) {
    double params = m->n_layers * wk_model_params_per_layer(m) + (double)m->vocab * m->hidden;
    return 2.0 * params + wk_model_kv_bytes_per_token(m, 16) * ((double)context + 1);
}

static double prefill_attention_flops(const wk_model_spec *m, int chunk) {
    return 4.0 * m->n_layers * m->n_heads * (double)m->head_dim * ((double)chunk * (chunk + 1) / 2);
}

static double prefill_flops(const wk_model_spec *m, int chunk) {
    double layer_params = m->n_layers * wk_model_params_per_layer(m);
    return 2.0 * layer_params * chunk + prefill_attention_flops(m, chunk) + 2.0 * (double)m->vocab * m->hidden;
}

/* Token ids that exist in any vocabulary of the model. */
static void fill_tokens(int32_t *t, int n, int vocab) {
    for (int i = 0; i < n; i++) t[i] = (int32_t)(((long long)i * 7919 + 13) % vocab);
}

/* Median seconds of PREFILL_REPEATS prefills of n tokens (other work on the machine only slows a run). */
#define PREFILL_REPEATS 3
static int time_prefill(wk_engine *e, int n, int32_t *tokens, float *logits, double *seconds, wk_err *err) {
    double t[PREFILL_REPEATS];
    int rc = 0;
    for (int r = 0; r < PREFILL_REPEATS && !rc; r++) {
        e->ops->kv_clear(e);
        double t0 = wk_now_s();
        rc = wk_engine_prefill(e, tokens, n, 0, logits, err);
        t[r] = wk_now_s() - t0;
    }
    wk_sort_doubles(t, PREFILL_REPEATS);
    *seconds = t[PREFILL_REPEATS / 2];
    return rc;
}

/* Median seconds of one decode step after `context` prefilled tokens (the median: a step slowed by
 * other work on the machine does not move it). */
static int time_decode(wk_engine *e, int context, int steps, int32_t *tokens, float *logits, double *seconds,
                       wk_err *err) {
    e->ops->kv_clear(e);
    int rc = wk_engine_prefill(e, tokens, context, 0, logits, err);
    if (rc) return rc;
    double *t = malloc((size_t)steps * sizeof *t);
    if (!t) return wk_err_set(err, WK_ENOMEM, "calibrate: out of memory");
    for (int s = 0; s < steps && !rc; s++) {
        wk_forward_args a = {.tokens = &tokens[s], .n_tokens = 1, .pos = context + s, .logits = logits, .logit_rows = 1};
        double t0 = wk_now_s();
        rc = wk_engine_forward(e, &a, err);
        t[s] = wk_now_s() - t0;
    }
    if (!rc) {
        wk_sort_doubles(t, (size_t)steps);
        *seconds = wk_percentile_sorted(t, (size_t)steps, 0.5);
    }
    free(t);
    return rc;
}

/* Least squares y = a x + b; with fix_b >= 0, b is fixed. */
static void fit_line(const double *x, const double *y, int n, double fix_b, double *a, double *b) {
    if (fix_b >= 0) {
        double sxy = 0, sxx = 0;
        for (int i = 0; i < n; i++) {
            sxy += x[i] * (y[i] - fix_b);
            sxx += x[i] * x[i];
        }
        *a = sxx > 0 ? sxy / sxx : 0;
        *b = fix_b;
        return;
    }
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) { mx += x[i] / n; my += y[i] / n; }
    double sxy = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
    }
    *a = sxx > 0 ? sxy / sxx : 0;
    *b = my - *a * mx;
}

int wk_calibrate(wk_engine *e, const wk_model_spec *m, const wk_device *base, const int *prefill, int n_prefill,
                 const int *decode_ctx, int n_decode, int decode_steps, wk_cal_report *rep, wk_err *err) {
    memset(rep, 0, sizeof *rep);
    if (n_prefill < 2 || n_decode < 2 || n_prefill + n_decode > WK_CAL_MAX_POINTS || decode_steps < 1)
        return wk_err_set(err, WK_EINVAL, "calibrate: need 2..%d prefill lengths and decode contexts",
                          WK_CAL_MAX_POINTS / 2);
    int most = 0;
    for (int i = 0; i < n_prefill; i++) most = prefill[i] > most ? prefill[i] : most;
    for (int i = 0; i < n_decode; i++) most = decode_ctx[i] + decode_steps > most ? decode_ctx[i] + decode_steps : most;
    if (most > e->kv_capacity)
        return wk_err_set(err, WK_EINVAL, "calibrate: %d tokens exceed the engine's KV capacity %d", most, e->kv_capacity);
    int32_t *tokens = malloc((size_t)most * sizeof *tokens);
    float *logits = malloc((size_t)e->cfg.vocab_size * sizeof *logits);
    if (!tokens || !logits) {
        free(tokens);
        free(logits);
        return wk_err_set(err, WK_ENOMEM, "calibrate: out of memory");
    }
    fill_tokens(tokens, most, e->cfg.vocab_size);
    wk_progress prog;
    wk_progress_start(&prog, "calibrate", (size_t)(n_prefill + n_decode + 1));
    double warm;
    int rc = time_prefill(e, prefill[0], tokens, logits, &warm, err); /* warm-up: first launches, caches */
    wk_progress_step(&prog, 1);
    double x[WK_CAL_MAX_POINTS], y[WK_CAL_MAX_POINTS];
    for (int i = 0; !rc && i < n_decode; i++) {
        wk_cal_point *p = &rep->points[rep->n++];
        p->is_decode = 1;
        p->tokens = decode_ctx[i];
        rc = time_decode(e, decode_ctx[i], decode_steps, tokens, logits, &p->measured_s, err);
        x[i] = decode_bytes(m, decode_ctx[i]);
        y[i] = p->measured_s;
        wk_progress_step(&prog, 1);
    }
    for (int i = 0; !rc && i < n_prefill; i++) {
        wk_cal_point *p = &rep->points[rep->n++];
        p->tokens = prefill[i];
        rc = time_prefill(e, prefill[i], tokens, logits, &p->measured_s, err);
        wk_progress_step(&prog, 1);
    }
    wk_progress_finish(&prog);
    free(tokens);
    free(logits);
    if (rc) return rc;
    rep->fitted = *base;
    double slope, overhead;
    fit_line(x, y, n_decode, -1, &slope, &overhead);
    /* noise (a loaded machine) can make the free fit's overhead negative or its slope flat: then the
     * line through the origin, whose slope is positive for any positive times */
    if (overhead < 0 || !(slope > 0)) fit_line(x, y, n_decode, 0, &slope, &overhead);
    if (!(slope > 0)) return wk_err_set(err, WK_ESTATE, "calibrate: decode times are not positive");
    rep->fitted.decode_efficiency = fmin(1.0, 1.0 / (slope * base->mem_bw_Bps));
    rep->fitted.step_overhead_s = overhead;
    int np = 0;
    for (int i = 0; i < rep->n; i++)
        if (!rep->points[i].is_decode) {
            x[np] = prefill_flops(m, rep->points[i].tokens);
            y[np++] = rep->points[i].measured_s;
        }
    double b;
    fit_line(x, y, np, overhead, &slope, &b);
    if (!(slope > 0)) fit_line(x, y, np, 0, &slope, &b);
    if (!(slope > 0)) return wk_err_set(err, WK_ESTATE, "calibrate: prefill times are not positive");
    rep->fitted.prefill_efficiency = fmin(1.0, 1.0 / (slope * base->peak_fp16_flops));
    for (int i = 0; i < rep->n; i++) {
        wk_cal_point *p = &rep->points[i];
        double kv = wk_model_kv_bytes_per_token(m, 16);
        p->fitted_s = p->is_decode ? wk_device_decode_s(&rep->fitted, m, p->tokens, kv)
                                   : wk_device_prefill_s(&rep->fitted, m, p->tokens, 0);
        p->analytic_s = p->is_decode ? wk_device_decode_s(base, m, p->tokens, kv) : wk_device_prefill_s(base, m, p->tokens, 0);
    }
    return 0;
}

int wk_calibrate_fit_attention(wk_cal_report *rep, const wk_model_spec *m, wk_err *err) {
    /* least squares without intercept: y - overhead = a x1 + b x2 (x1 other FLOPs, x2 attention) */
    double s11 = 0, s12 = 0, s22 = 0, s1y = 0, s2y = 0;
    int np = 0;
    for (int i = 0; i < rep->n; i++) {
        const wk_cal_point *p = &rep->points[i];
        if (p->is_decode) continue;
        double x2 = prefill_attention_flops(m, p->tokens), x1 = prefill_flops(m, p->tokens) - x2;
        double y = p->measured_s - rep->fitted.step_overhead_s;
        s11 += x1 * x1, s12 += x1 * x2, s22 += x2 * x2, s1y += x1 * y, s2y += x2 * y;
        np++;
    }
    double det = s11 * s22 - s12 * s12;
    if (np < 2 || !(fabs(det) > 0)) return wk_err_set(err, WK_ESTATE, "calibrate: need 2 distinct prefill lengths");
    double a = (s1y * s22 - s2y * s12) / det, b = (s2y * s11 - s1y * s12) / det;
    if (!(a > 0 && b > 0)) return wk_err_set(err, WK_ESTATE, "calibrate: the attention fit is not positive");
    wk_device *d = &rep->fitted;
    d->prefill_efficiency = fmin(1.0, 1.0 / (a * d->peak_fp16_flops));
    d->attention_efficiency = fmin(1.0, 1.0 / (b * d->peak_fp16_flops));
    for (int i = 0; i < rep->n; i++)
        if (!rep->points[i].is_decode) rep->points[i].fitted_s = wk_device_prefill_s(d, m, rep->points[i].tokens, 0);
    return 0;
}

int wk_calibrate_write(const wk_cal_report *rep, const wk_device *base, const char *source, const char *path,
                       wk_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return wk_err_set(err, WK_EIO, "%s: cannot create", path);
    const wk_device *d = &rep->fitted;
    fprintf(f, "# %s, measured by `wikv calibrate` on %s\n", d->name, source);
    fprintf(f, "# spec numbers from %s; efficiencies and overhead fitted to the measured points below\n", base->name);
    fprintf(f, "name = %s\n", d->name);
    fprintf(f, "peak_fp16_tflops = %.6g   # spec (%s)\n", d->peak_fp16_flops / 1e12, base->name);
    fprintf(f, "mem_bw_gbps = %.6g   # spec (%s)\n", d->mem_bw_Bps / 1e9, base->name);
    fprintf(f, "prefill_efficiency = %.6g   # fitted\n", d->prefill_efficiency);
    fprintf(f, "decode_efficiency = %.6g   # fitted\n", d->decode_efficiency);
    fprintf(f, "kv_decode_gbps = %.6g   # not measured: %s's value\n", d->kv_decode_Bps / 1e9, base->name);
    fprintf(f, "h2d_gbps = %.6g   # not measured: %s's value\n", d->h2d_Bps / 1e9, base->name);
    fprintf(f, "step_overhead_ms = %.6g   # fitted\n", d->step_overhead_s * 1e3);
    if (d->attention_efficiency > 0) fprintf(f, "attention_efficiency = %.6g   # fitted\n", d->attention_efficiency);
    for (int i = 0; i < d->n_kv_rates; i++)
        fprintf(f, "kv_decode_gbps.%s = %.6g   # measured\n", d->kv_rates[i].policy, d->kv_rates[i].Bps / 1e9);
    fprintf(f, "# points: kind tokens measured_ms fitted_ms analytic_ms\n");
    for (int i = 0; i < rep->n; i++) {
        const wk_cal_point *p = &rep->points[i];
        fprintf(f, "#   %s %d %.4f %.4f %.4f\n", p->is_decode ? "decode" : "prefill", p->tokens, p->measured_s * 1e3,
                p->fitted_s * 1e3, p->analytic_s * 1e3);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return wk_err_set(err, WK_EIO, "%s: write failed", path);
    return 0;
}

void wk_calibrate_print(const wk_cal_report *rep, FILE *out) {
    fprintf(out, "%-8s %7s %12s %12s %12s %10s\n", "step", "tokens", "measured_ms", "fitted_ms", "analytic_ms",
            "analytic_err");
    for (int i = 0; i < rep->n; i++) {
        const wk_cal_point *p = &rep->points[i];
        fprintf(out, "%-8s %7d %12.3f %12.3f %12.3f %9.1f%%\n", p->is_decode ? "decode" : "prefill", p->tokens,
                p->measured_s * 1e3, p->fitted_s * 1e3, p->analytic_s * 1e3,
                100.0 * (p->analytic_s - p->measured_s) / p->measured_s);
    }
    fprintf(out, "fitted: prefill_efficiency %.3g, decode_efficiency %.3g, step_overhead %.3f ms", rep->fitted.prefill_efficiency,
            rep->fitted.decode_efficiency, rep->fitted.step_overhead_s * 1e3);
    if (rep->fitted.attention_efficiency > 0) fprintf(out, ", attention_efficiency %.3g", rep->fitted.attention_efficiency);
    fputc('\n', out);
}
