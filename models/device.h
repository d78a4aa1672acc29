/* Device compute profiles and the analytic roofline that predicts step times from them.
 *
 * A profile is a text file models/devices/NAME.profile of `key = value  # source` lines; every
 * spec number carries its source. Times follow the roofline: a step costs the larger of its
 * FLOPs at (peak x efficiency) and its bytes at (bandwidth x efficiency), plus a fixed
 * per-step overhead (kernel launches, synchronisation). Measured tables from `wikv calibrate`
 * will replace the analytic predictions for devices we can run on. */
#ifndef WIKV_MODELS_DEVICE_H
#define WIKV_MODELS_DEVICE_H

#include "core/err.h"
#include "models/model_spec.h"

typedef struct wk_device {
    char name[64];
    double peak_fp16_flops;     /* dense fp16 tensor FLOP/s */
    double mem_bw_Bps;          /* DRAM/HBM bytes per second */
    double prefill_efficiency;  /* achievable fraction of peak FLOP/s in prefill GEMMs */
    double decode_efficiency;   /* achievable fraction of memory bandwidth in decode */
    double kv_decode_Bps;       /* codec decode (dequantize/entropy-decode) output bytes per second */
    double h2d_Bps;             /* host-to-device copy bytes per second; 0 = unified memory, no copy */
    double step_overhead_s;     /* fixed cost per forward step (launches, sync) */
} wk_device;

int wk_device_load(const char *path, wk_device *dev, wk_err *err);
/* A bundled name (models/devices/NAME.profile) or a path. */
int wk_device_find(const char *name, wk_device *dev, wk_err *err);
void wk_device_list(char *buf, size_t cap);

/* Seconds to prefill `chunk` new tokens on top of `past` cached tokens (all layers, logits of the
 * last token only). */
double wk_device_prefill_s(const wk_device *d, const wk_model_spec *m, int chunk, int past);
/* Seconds of one decode step over `context` cached tokens whose KV is read at `kv_bytes_per_token`
 * (all layers; e.g. wk_model_kv_bytes_per_token(m, 16) for fp16). */
double wk_device_decode_s(const wk_device *d, const wk_model_spec *m, int context, double kv_bytes_per_token);
/* Seconds to decode (dequantize or entropy-decode) codec data into `out_bytes` of fp16 KV. */
double wk_device_kv_decode_s(const wk_device *d, double out_bytes);
/* Seconds to copy bytes from host to device memory (0 on unified memory). */
double wk_device_h2d_s(const wk_device *d, double bytes);

#endif
