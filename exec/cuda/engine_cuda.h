/* CUDA backend of the inference engine (exec/engine.h): fp16 weights and KV cache on the GPU, cuBLAS
 * GEMMs (fp16 in, fp32 accumulate), own kernels for norms, RoPE, SwiGLU, attention (flash-style
 * prefill, split-sequence decode) and greedy sampling. The KV cache keeps the presence mask
 * [layer][kv_head][token] of the contract, honoured by both attention kernels.
 * Built only when nvcc is present (WIKV_HAVE_CUDA); every call fails cleanly when no GPU is found. */
#ifndef WIKV_EXEC_CUDA_ENGINE_CUDA_H
#define WIKV_EXEC_CUDA_ENGINE_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>
#include <stdint.h>

#include "exec/engine.h"

/* Opens a model on GPU 0: `src` is a Hugging Face folder (config.json + safetensors, loaded through
 * exec/safetensors.h and converted to fp16) or "synthetic:NAME", the shape of models/specs/NAME.json
 * with deterministic random weights generated on the GPU (see wk_engine_cuda_synth_key). */
int wk_engine_cuda_open(const char *src, const wk_engine_opts *opts, wk_engine **out, wk_err *err);

/* Environment: WIKV_CUDA_NO_GEMV=1 makes single-token steps use the cuBLAS path instead of the fused
 * matrix-vector kernels (A/B timing; both are checked against the CPU engine by tests/gpu). */

/* One decode step kept on the device: forward of `token` at `pos`, argmax of its logits there, and
 * only the chosen id copied back into *next. */
int wk_engine_cuda_step_greedy(wk_engine *e, int32_t token, int pos, int32_t *next, wk_err *err);

/* Waits until all queued GPU work of the engine is done (for timing); 0 or WK_EIO. */
int wk_engine_cuda_sync(wk_engine *e, wk_err *err);

/* The KV cache on the GPU, for decoders that write it in place (exec/kv_sink.h): fp16 K and V
 * [n_layers][n_kv_heads][token_stride][head_dim] (RoPE applied to K) and presence
 * [n_layers][n_kv_heads][token_stride] uint8, token_stride = kv_capacity. A writer on another stream starts
 * after wk_engine_cuda_sync and finishes before the engine's next call. WK_EINVAL when e is not a CUDA
 * engine. */
int wk_engine_cuda_kv_cache(wk_engine *e, uint16_t **k, uint16_t **v, uint8_t **present, int *token_stride,
                            wk_err *err);

/* "NAME, N MiB" of the engine's GPU into buf. */
void wk_engine_cuda_device(const wk_engine *e, char *buf, size_t cap);

/* Synthetic weights: the generator and tensor kinds of exec/engine.h (WK_SYN_*, wk_synth_f16, the
 * CPU reference of kernels_synth.cu). */

#ifdef __cplusplus
}
#endif

#endif
