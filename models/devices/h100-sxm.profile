# NVIDIA H100 SXM5 80GB (edge server class; also the GPU of the device machine wikv calibrates on)
name = h100-sxm
peak_fp16_tflops = 989.4    # NVIDIA H100 datasheet: FP16 Tensor Core 1,979 TFLOPS with sparsity -> 989.4 dense
mem_bw_gbps = 3350          # NVIDIA H100 datasheet: SXM5 HBM3 3.35 TB/s
prefill_efficiency = 0.60   # assumption: cuBLAS fp16 GEMMs at LLM prefill shapes reach 55-70% of dense peak
decode_efficiency = 0.80    # assumption: decode GEMV reaches ~80% of HBM bandwidth (calm-class engines 80-90%)
kv_decode_gbps = 1500       # assumption: dequant kernels are memory bound (read codes + write fp16) ~45% of HBM
h2d_gbps = 50               # PCIe Gen5 x16 is 64 GB/s per direction; ~50 GB/s achieved with pinned memory
step_overhead_ms = 0.5      # assumption: ~300 kernel launches per 32-layer step without CUDA graphs
