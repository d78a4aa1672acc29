/* Calibration: measures the engine on this machine and fits the device profile's free terms to it.
 *
 * The roofline of models/device.h keeps the spec numbers (peak FLOP/s, memory bandwidth) and fits:
 *   decode step time  t = bytes / (bandwidth x decode_efficiency) + step_overhead
 *     (bytes = fp16 weights + fp16 KV of the context), least squares over several context lengths;
 *   prefill time      t = FLOPs / (peak x prefill_efficiency) + step_overhead
 *     (FLOPs as the roofline counts them), least squares through the decode fit's overhead.
 * The report lists, per measured point, the time measured, the time the fitted profile predicts and
 * the time the base (analytic) profile predicted, so the analytic profile's error is known. */
#ifndef WIKV_EXEC_CALIBRATE_H
#define WIKV_EXEC_CALIBRATE_H

#include <stdio.h>

#include "exec/engine.h"
#include "models/device.h"

#define WK_CAL_MAX_POINTS 16

typedef struct wk_cal_point {
    int is_decode;   /* 1: one decode step at `tokens` context; 0: prefill of `tokens` tokens */
    int tokens;
    double measured_s, fitted_s, analytic_s;
} wk_cal_point;

typedef struct wk_cal_report {
    wk_cal_point points[WK_CAL_MAX_POINTS];
    int n;
    wk_device fitted;
} wk_cal_report;

/* Measures `e` (a model of shape m) at the given prefill lengths and decode contexts (each must fit
 * the engine's KV capacity), fits `base`'s free terms and fills the report. */
int wk_calibrate(wk_engine *e, const wk_model_spec *m, const wk_device *base, const int *prefill, int n_prefill,
                 const int *decode_ctx, int n_decode, int decode_steps, wk_cal_report *rep, wk_err *err);
/* Refits the prefill points with two terms, the attention FLOPs at their own efficiency
 * (attention_efficiency) and the other FLOPs at prefill_efficiency, over the decode fit's overhead:
 * for engines whose attention runs far below their matmuls (the CPU reference). Needs >= 2 prefill
 * points; leaves the report unchanged (returns WK_ESTATE) when the fit is not positive. */
int wk_calibrate_fit_attention(wk_cal_report *rep, const wk_model_spec *m, wk_err *err);
/* Writes the fitted profile (wk_device_load reads it back), with `source` (GPU name, date, commit) in
 * the comments. */
int wk_calibrate_write(const wk_cal_report *rep, const wk_device *base, const char *source, const char *path,
                       wk_err *err);
void wk_calibrate_print(const wk_cal_report *rep, FILE *out);

#endif
