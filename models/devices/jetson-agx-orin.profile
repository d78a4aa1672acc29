# NVIDIA Jetson AGX Orin 64GB (Ampere iGPU, 2048 CUDA cores, 64 Tensor Cores, unified LPDDR5)
name = jetson-agx-orin
peak_fp16_tflops = 42.5     # Jetson AGX Orin technical brief: GPU 170 sparse INT8 TOPS; dense FP16 = 1/4 of that
mem_bw_gbps = 204.8         # Jetson AGX Orin datasheet: 256-bit LPDDR5 at 204.8 GB/s
prefill_efficiency = 0.40   # assumption: small iGPU at 60 W reaches ~40% of tensor peak on prefill GEMMs
decode_efficiency = 0.60    # assumption: LPDDR5 shared with the CPU; ~60% of peak in GEMV
kv_decode_gbps = 60         # assumption: dequant kernels memory bound at ~30% of DRAM bandwidth
h2d_gbps = 0                # unified memory: received KV is already in GPU-visible memory
step_overhead_ms = 2.0      # assumption: slower launch path on the embedded CPU cores
