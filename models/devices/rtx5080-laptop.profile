# NVIDIA GeForce RTX 5080 Laptop GPU (Blackwell GB203, 7680 CUDA cores, 16 GB GDDR7 256-bit)
name = rtx5080-laptop
peak_fp16_tflops = 83.4     # derived: NVIDIA lists 1,334 AI TOPS (FP4, sparse); dense FP16 = 1/16 of that
mem_bw_gbps = 896           # 256-bit GDDR7 at 28 Gbps = 896 GB/s (NVIDIA laptop GPU specifications)
prefill_efficiency = 0.50   # assumption: power-limited laptop part; ~50% of tensor peak on prefill GEMMs
decode_efficiency = 0.75    # assumption: discrete GDDR7, GEMV at ~75% of peak bandwidth
kv_decode_gbps = 350        # assumption: dequant kernels memory bound at ~40% of DRAM bandwidth
h2d_gbps = 20               # assumption: laptop PCIe Gen4/5 x8 link, ~20 GB/s achieved with pinned memory
step_overhead_ms = 1.0      # assumption
