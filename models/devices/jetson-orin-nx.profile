# NVIDIA Jetson Orin NX 16GB (Ampere iGPU, 1024 CUDA cores, 32 Tensor Cores at 918 MHz, unified LPDDR5)
name = jetson-orin-nx
peak_fp16_tflops = 15.0     # derived: AGX Orin's 42.5 scaled by Tensor Cores (32/64) and clock (918/1300 MHz)
mem_bw_gbps = 102.4         # Jetson Orin NX datasheet: 128-bit LPDDR5 at 102.4 GB/s
prefill_efficiency = 0.40   # assumption, as for AGX Orin
decode_efficiency = 0.60    # assumption, as for AGX Orin
kv_decode_gbps = 30         # assumption: ~30% of DRAM bandwidth
h2d_gbps = 0                # unified memory
step_overhead_ms = 2.5      # assumption
