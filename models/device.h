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
    /* Optional terms (0 / none: the roofline above alone), fitted by `wikv calibrate` where an engine
     * departs from it, e.g. a CPU whose attention loops run far below its matmul rate:
     *   attention_efficiency: fraction of peak FLOP/s of the attention FLOPs of prefill; the other
     *     FLOPs keep prefill_efficiency and the two compute times add up.
     *   kv_decode_gbps.POLICY: decode rate of one policy's units, in fp16 bytes of the KV they fill
     *     per second (codecs differ by orders of magnitude: an fp16 copy against entropy decoding);
     *     other policies use kv_decode_gbps. */
    double attention_efficiency;
#define WK_DEVICE_MAX_KV_RATES 16
    struct { char policy[32]; double Bps; } kv_rates[WK_DEVICE_MAX_KV_RATES];
    int n_kv_rates;
} wk_device;

int wk_device_load(const char *path, wk_device *dev, wk_err *err);
/* A bundled name (models/devices/NAME.profile) or a path. */
int wk_device_find(const char *name, wk_device *dev, wk_err *err);
void wk_device_list(char *buf, size_t cap);

/* Seconds to prefill `chunk` new tokens on top of `past` cached tokens (all layers, logits of the
 * last token only). */
double wk_device_prefill_s(const wk_device *d, const wk_model_spec *m, int chunk, int past);
/* What prefill times of one model depend on besides the step, computed once for many steps (a
 * simulated request's): wk_device_prefill_step_s gives wk_device_prefill_s exactly. */
typedef struct wk_prefill_cost {
    double layer_params, head_params; /* parameters of all layers, of the LM head */
    double kv_bytes_per_token;        /* fp16 cache */
    double attention_per_key;         /* FLOPs per (query, key) pair over all layers and heads */
} wk_prefill_cost;
wk_prefill_cost wk_prefill_cost_of(const wk_model_spec *m);
double wk_device_prefill_step_s(const wk_device *d, const wk_prefill_cost *c, int chunk, int past);
/* Seconds of one decode step over `context` cached tokens whose KV is read at `kv_bytes_per_token`
 * (all layers; e.g. wk_model_kv_bytes_per_token(m, 16) for fp16). */
double wk_device_decode_s(const wk_device *d, const wk_model_spec *m, int context, double kv_bytes_per_token);
/* Seconds to decode (dequantize or entropy-decode) codec data into `out_bytes` of fp16 KV. */
double wk_device_kv_decode_s(const wk_device *d, double out_bytes);
/* Decode time of a unit of `policy` that fills `values` KV values and decodes into `out_bytes` (its
 * plan's decoded_bytes): with a kv_decode_gbps.POLICY rate, the unit's fp16 size (2 x values) at that
 * rate, whatever its codec (the engine writes every arriving unit into its cache, an fp16 copy
 * included); otherwise wk_device_kv_decode_s(out_bytes). */
double wk_device_kv_decode_policy_s(const wk_device *d, const char *policy, double out_bytes, double values);
/* Sets (or adds) the decode rate of a policy's units; WK_EINVAL when the table is full. */
int wk_device_set_kv_rate(wk_device *d, const char *policy, double Bps, wk_err *err);
/* Seconds to copy bytes from host to device memory (0 on unified memory). */
double wk_device_h2d_s(const wk_device *d, double bytes);

#endif
